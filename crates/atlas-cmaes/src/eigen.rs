//! Eigendecomposition of a symmetric matrix: Householder reduction to tridiagonal form
//! followed by the implicit QL algorithm with Wilkinson-type shifts (the EISPACK routines
//! `tred2` and `tql2`, in the form popularised by JAMA).
//!
//! Cost: about `(4/3) n^3` flops for the reduction and `3 n^3` for accumulating the
//! eigenvectors (`n = 100`: a few milliseconds; `n = 200`: a few tens), which CMA-ES pays
//! once every several generations. Above a few hundred variables the backend switches to
//! a diagonal covariance and never calls this.

/// Why a decomposition failed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct NoConvergence;

/// Eigenvalues and eigenvectors of the symmetric `n x n` matrix `a` (row-major; only its
/// values are read, its symmetry is assumed). On success `values[i]` is the `i`-th
/// eigenvalue (ascending) and row `i` of `vectors` (`vectors[i * n..(i + 1) * n]`) its
/// unit eigenvector.
pub(crate) fn symmetric_eigen(
    a: &[f64],
    n: usize,
    values: &mut [f64],
    vectors: &mut [f64],
) -> Result<(), NoConvergence> {
    assert_eq!(a.len(), n * n);
    assert_eq!(values.len(), n);
    assert_eq!(vectors.len(), n * n);
    if n == 0 {
        return Ok(());
    }
    // `v` holds the column-major accumulation of the transformations: v[k][j] is
    // component k of vector j, stored row-major as v[k * n + j].
    let mut v = a.to_vec();
    let mut d = vec![0.0; n];
    let mut e = vec![0.0; n];
    tred2(n, &mut v, &mut d, &mut e);
    // Transpose so that each eigenvector is a contiguous row: the QL sweeps then rotate
    // pairs of rows, which is cache friendly.
    for k in 0..n {
        for j in 0..n {
            vectors[j * n + k] = v[k * n + j];
        }
    }
    tql2(n, vectors, &mut d, &mut e)?;
    // Sort ascending (selection sort on the values, swapping rows).
    for i in 0..n {
        let mut k = i;
        for j in i + 1..n {
            if d[j] < d[k] {
                k = j;
            }
        }
        if k != i {
            d.swap(i, k);
            for c in 0..n {
                vectors.swap(i * n + c, k * n + c);
            }
        }
    }
    values.copy_from_slice(&d);
    Ok(())
}

/// Householder reduction of the symmetric matrix in `v` to tridiagonal form: on return
/// `d` is the diagonal, `e[1..]` the subdiagonal, and `v` the orthogonal transformation.
fn tred2(n: usize, v: &mut [f64], d: &mut [f64], e: &mut [f64]) {
    let at = |k: usize, j: usize| k * n + j;
    for j in 0..n {
        d[j] = v[at(n - 1, j)];
    }
    for i in (1..n).rev() {
        // Scale the row to avoid under- and overflow.
        let mut scale = 0.0;
        let mut h = 0.0;
        for dk in &d[..i] {
            scale += dk.abs();
        }
        if scale == 0.0 {
            e[i] = d[i - 1];
            for j in 0..i {
                d[j] = v[at(i - 1, j)];
                v[at(i, j)] = 0.0;
                v[at(j, i)] = 0.0;
            }
        } else {
            // The Householder vector.
            for dk in &mut d[..i] {
                *dk /= scale;
                h += *dk * *dk;
            }
            let mut f = d[i - 1];
            let mut g = h.sqrt();
            if f > 0.0 {
                g = -g;
            }
            e[i] = scale * g;
            h -= f * g;
            d[i - 1] = f - g;
            for ej in &mut e[..i] {
                *ej = 0.0;
            }
            // Apply the similarity transformation to the remaining columns.
            for j in 0..i {
                f = d[j];
                v[at(j, i)] = f;
                g = e[j] + v[at(j, j)] * f;
                for k in j + 1..i {
                    g += v[at(k, j)] * d[k];
                    e[k] += v[at(k, j)] * f;
                }
                e[j] = g;
            }
            f = 0.0;
            for j in 0..i {
                e[j] /= h;
                f += e[j] * d[j];
            }
            let hh = f / (h + h);
            for j in 0..i {
                e[j] -= hh * d[j];
            }
            for j in 0..i {
                f = d[j];
                g = e[j];
                for k in j..i {
                    v[at(k, j)] -= f * e[k] + g * d[k];
                }
                d[j] = v[at(i - 1, j)];
                v[at(i, j)] = 0.0;
            }
        }
        d[i] = h;
    }
    // Accumulate the transformations.
    for i in 0..n - 1 {
        v[at(n - 1, i)] = v[at(i, i)];
        v[at(i, i)] = 1.0;
        let h = d[i + 1];
        if h != 0.0 {
            for k in 0..=i {
                d[k] = v[at(k, i + 1)] / h;
            }
            for j in 0..=i {
                let mut g = 0.0;
                for k in 0..=i {
                    g += v[at(k, i + 1)] * v[at(k, j)];
                }
                for k in 0..=i {
                    v[at(k, j)] -= g * d[k];
                }
            }
        }
        for k in 0..=i {
            v[at(k, i + 1)] = 0.0;
        }
    }
    for j in 0..n {
        d[j] = v[at(n - 1, j)];
        v[at(n - 1, j)] = 0.0;
    }
    v[at(n - 1, n - 1)] = 1.0;
    e[0] = 0.0;
}

/// Implicit QL iterations on the tridiagonal matrix (`d`, `e`), rotating the rows of `w`
/// (row `j` = eigenvector `j`) along.
fn tql2(n: usize, w: &mut [f64], d: &mut [f64], e: &mut [f64]) -> Result<(), NoConvergence> {
    for i in 1..n {
        e[i - 1] = e[i];
    }
    e[n - 1] = 0.0;
    let mut f = 0.0;
    let mut tst1 = 0.0f64;
    let eps = f64::EPSILON;
    for l in 0..n {
        // Find a small subdiagonal element.
        tst1 = tst1.max(d[l].abs() + e[l].abs());
        let mut m = l;
        while m < n - 1 && e[m].abs() > eps * tst1 {
            m += 1;
        }
        // If m == l, d[l] is already an eigenvalue; otherwise iterate.
        if m > l {
            let mut iterations = 0;
            loop {
                iterations += 1;
                if iterations > 60 {
                    return Err(NoConvergence);
                }
                // Compute the implicit shift.
                let mut g = d[l];
                let mut p = (d[l + 1] - g) / (2.0 * e[l]);
                let mut r = p.hypot(1.0);
                if p < 0.0 {
                    r = -r;
                }
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                let dl1 = d[l + 1];
                let mut h = g - d[l];
                for di in &mut d[l + 2..n] {
                    *di -= h;
                }
                f += h;
                // Implicit QL transformation.
                p = d[m];
                let mut c = 1.0;
                let mut c2 = c;
                let mut c3 = c;
                let el1 = e[l + 1];
                let mut s = 0.0;
                let mut s2 = 0.0;
                for i in (l..m).rev() {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    g = c * e[i];
                    h = c * p;
                    r = p.hypot(e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    // Accumulate the rotation on rows i and i + 1.
                    let (head, tail) = w.split_at_mut((i + 1) * n);
                    let row_i = &mut head[i * n..];
                    let row_next = &mut tail[..n];
                    for (a, b) in row_i.iter_mut().zip(row_next.iter_mut()) {
                        let hb = *b;
                        *b = s * *a + c * hb;
                        *a = c * *a - s * hb;
                    }
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
                if e[l].abs() <= eps * tst1 || e[l].is_nan() {
                    break;
                }
            }
        }
        d[l] += f;
        e[l] = 0.0;
    }
    if d.iter().all(|x| x.is_finite()) {
        Ok(())
    } else {
        Err(NoConvergence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random_symmetric(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let x: f64 = rng.random::<f64>() * 2.0 - 1.0;
                a[i * n + j] = x;
                a[j * n + i] = x;
            }
        }
        a
    }

    /// `A v_i = lambda_i v_i` and `V V' = I`, to rounding.
    fn check(a: &[f64], n: usize) {
        let mut values = vec![0.0; n];
        let mut vectors = vec![0.0; n * n];
        symmetric_eigen(a, n, &mut values, &mut vectors).unwrap();
        let scale = a.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        for i in 0..n {
            let vi = &vectors[i * n..(i + 1) * n];
            for r in 0..n {
                let av: f64 = (0..n).map(|c| a[r * n + c] * vi[c]).sum();
                assert!(
                    (av - values[i] * vi[r]).abs() < 1e-11 * scale * n as f64,
                    "n={n} i={i} r={r}"
                );
            }
            for j in 0..n {
                let vj = &vectors[j * n..(j + 1) * n];
                let dot: f64 = vi.iter().zip(vj).map(|(x, y)| x * y).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!(
                    (dot - want).abs() < 1e-12 * n as f64,
                    "n={n} i={i} j={j}: {dot}"
                );
            }
        }
        assert!(values.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn random_matrices_are_diagonalized() {
        for (n, seed) in [(1, 1), (2, 2), (3, 3), (7, 4), (30, 5), (64, 6)] {
            check(&random_symmetric(n, seed), n);
        }
    }

    #[test]
    fn known_spectrum() {
        // [[2, 1], [1, 2]] has eigenvalues 1 and 3 with vectors (1, -1)/sqrt2, (1, 1)/sqrt2.
        let a = [2.0, 1.0, 1.0, 2.0];
        let mut values = [0.0; 2];
        let mut vectors = [0.0; 4];
        symmetric_eigen(&a, 2, &mut values, &mut vectors).unwrap();
        assert!((values[0] - 1.0).abs() < 1e-14 && (values[1] - 3.0).abs() < 1e-14);
        assert!((vectors[0].abs() - 0.5f64.sqrt()).abs() < 1e-14);
        assert!((vectors[0] + vectors[1]).abs() < 1e-14);
        // Diagonal and repeated eigenvalues (the identity, a multiple root).
        let mut eye = vec![0.0; 16];
        for i in 0..4 {
            eye[i * 4 + i] = 5.0;
        }
        check(&eye, 4);
        let mut values = [0.0; 4];
        let mut vectors = [0.0; 16];
        symmetric_eigen(&eye, 4, &mut values, &mut vectors).unwrap();
        assert!(values.iter().all(|v| (v - 5.0).abs() < 1e-14));
        // Rank one: u u' has eigenvalues 0 (n - 1 times) and |u|^2.
        let u = [1.0, 2.0, -3.0, 0.5, 4.0];
        let n = u.len();
        let a: Vec<f64> = (0..n * n).map(|k| u[k / n] * u[k % n]).collect();
        check(&a, n);
        let mut values = vec![0.0; n];
        let mut vectors = vec![0.0; n * n];
        symmetric_eigen(&a, n, &mut values, &mut vectors).unwrap();
        let norm2: f64 = u.iter().map(|x| x * x).sum();
        assert!((values[n - 1] - norm2).abs() < 1e-12 * norm2);
        assert!(values[..n - 1].iter().all(|v| v.abs() < 1e-12 * norm2));
    }
}
