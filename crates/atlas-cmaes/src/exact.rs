//! Exact serialization of floats: each `f64` is stored as its IEEE-754 bit pattern (a
//! `u64`), so that a serialized search resumes bit for bit (JSON has no infinity or NaN,
//! and a decimal round trip depends on the parser), used with `#[serde(with =
//! "crate::exact")]`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value whose floats are stored as bit patterns.
pub(crate) trait Exact: Sized {
    /// The stored form.
    type Repr: Serialize + DeserializeOwned;
    fn to_repr(&self) -> Self::Repr;
    fn from_repr(repr: Self::Repr) -> Self;
}

impl Exact for f64 {
    type Repr = u64;
    fn to_repr(&self) -> u64 {
        self.to_bits()
    }
    fn from_repr(repr: u64) -> Self {
        f64::from_bits(repr)
    }
}

impl<T: Exact> Exact for Vec<T> {
    type Repr = Vec<T::Repr>;
    fn to_repr(&self) -> Self::Repr {
        self.iter().map(Exact::to_repr).collect()
    }
    fn from_repr(repr: Self::Repr) -> Self {
        repr.into_iter().map(T::from_repr).collect()
    }
}

impl<T: Exact> Exact for Option<T> {
    type Repr = Option<T::Repr>;
    fn to_repr(&self) -> Self::Repr {
        self.as_ref().map(Exact::to_repr)
    }
    fn from_repr(repr: Self::Repr) -> Self {
        repr.map(T::from_repr)
    }
}

pub(crate) fn serialize<T: Exact, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    value.to_repr().serialize(s)
}

pub(crate) fn deserialize<'de, T: Exact, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    Ok(T::from_repr(T::Repr::deserialize(d)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Holder {
        #[serde(with = "crate::exact")]
        values: Vec<Option<f64>>,
    }

    #[test]
    fn every_float_survives_a_json_round_trip() {
        let values = vec![
            Some(f64::INFINITY),
            Some(f64::NEG_INFINITY),
            Some(-0.0),
            Some(0.1 + 0.2),
            Some(f64::MIN_POSITIVE / 3.0),
            None,
        ];
        let text = serde_json::to_string(&Holder { values }).unwrap();
        let back: Holder = serde_json::from_str(&text).unwrap();
        let nan: Holder = serde_json::from_str(
            &serde_json::to_string(&Holder {
                values: vec![Some(f64::NAN)],
            })
            .unwrap(),
        )
        .unwrap();
        assert!(nan.values[0].unwrap().is_nan());
        assert_eq!(back.values[0], Some(f64::INFINITY));
        assert_eq!(back.values[2].unwrap().to_bits(), (-0.0f64).to_bits());
        assert_eq!(back.values[3], Some(0.1 + 0.2));
        assert_eq!(back.values[4], Some(f64::MIN_POSITIVE / 3.0));
        assert_eq!(back.values[5], None);
    }
}
