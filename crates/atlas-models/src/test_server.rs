//! A loopback HTTP prediction service for tests and benchmarks:
//! it serves a known model in the contract's format (section 3) and misbehaves on
//! request — delays, 500 or 400 answers, hangs, wrong counts, NaN, HTML.
//!
//! Plain `std` (HTTP/1.1 with keep-alive, `Content-Length` bodies), one thread per
//! connection, listening on `127.0.0.1` only; dropping the server stops it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

/// The model a server answers with: the response at one point.
pub type ServedModel = Arc<dyn Fn(&[f64]) -> f64 + Send + Sync>;

/// How the server behaves; change it at any time through [`TestServer::set`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Behaviour {
    /// Wait this long before answering each request.
    pub delay: Duration,
    /// Answer every `k`-th request (1-based: the 3rd, 6th, ... for 3) with status 500.
    pub fail_every: Option<u64>,
    /// Answer every request with this status (and a short text body).
    pub status: Option<u16>,
    /// Never answer (until the server is dropped).
    pub hang: bool,
    /// Leave out the last value of every answer.
    pub drop_one_value: bool,
    /// Put `NaN` (as Python's `json.dumps` writes it) in place of the first value.
    pub nan: bool,
    /// Answer with an HTML page (a proxy's error page) and status 200.
    pub html: bool,
    /// Require this `Authorization` header; other requests get 401.
    pub require_authorization: Option<String>,
    /// Also return central-difference gradients of the served model (`"gradient"`).
    pub gradients: bool,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    points: AtomicU64,
    largest_batch: AtomicUsize,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

/// A running test server.
pub struct TestServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    behaviour: Arc<Mutex<Behaviour>>,
    counters: Arc<Counters>,
    accept: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Serves `model` on a free port of 127.0.0.1.
    pub fn start(model: ServedModel) -> std::io::Result<TestServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let behaviour = Arc::new(Mutex::new(Behaviour::default()));
        let counters = Arc::new(Counters::default());
        let accept = {
            let (stop, behaviour, counters) = (stop.clone(), behaviour.clone(), counters.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (stop, behaviour, counters, model) = (
                                stop.clone(),
                                behaviour.clone(),
                                counters.clone(),
                                model.clone(),
                            );
                            std::thread::spawn(move || {
                                serve(stream, &stop, &behaviour, &counters, &*model)
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(1)),
                    }
                }
            })
        };
        Ok(TestServer {
            addr,
            stop,
            behaviour,
            counters,
            accept: Some(accept),
        })
    }

    /// `http://127.0.0.1:PORT/predict`.
    pub fn url(&self) -> String {
        format!("http://{}/predict", self.addr)
    }

    /// Changes the behaviour for the requests that follow.
    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap_or_else(|e| e.into_inner()) = behaviour;
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::Relaxed)
    }

    /// Points asked for so far.
    pub fn points(&self) -> u64 {
        self.counters.points.load(Ordering::Relaxed)
    }

    /// The most points in one request.
    pub fn largest_batch(&self) -> usize {
        self.counters.largest_batch.load(Ordering::Relaxed)
    }

    /// The most requests in flight at once.
    pub fn most_in_flight(&self) -> usize {
        self.counters.most_in_flight.load(Ordering::Relaxed)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    stop: &AtomicBool,
    behaviour: &Mutex<Behaviour>,
    counters: &Counters,
    model: &(dyn Fn(&[f64]) -> f64 + Send + Sync),
) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut writer = write_half;
    let mut reader = BufReader::new(stream);
    loop {
        let Some((headers, body)) = read_request(&mut reader, stop) else {
            return;
        };
        let n = counters.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let now = counters.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        counters.most_in_flight.fetch_max(now, Ordering::Relaxed);
        let b = behaviour.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let answer = answer(&b, n, &headers, &body, counters, model, stop);
        counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        let Some((status, content_type, text)) = answer else {
            return;
        };
        let reply = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{text}",
            reason(status),
            text.len()
        );
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

type Headers = Vec<(String, String)>;

/// The request's lower-cased headers and body; `None` when the connection closed or the
/// server stops.
fn read_request(
    reader: &mut BufReader<TcpStream>,
    stop: &AtomicBool,
) -> Option<(Headers, Vec<u8>)> {
    let mut line = String::new();
    loop {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        match reader.read_line(&mut line) {
            Ok(0) => return None,
            Ok(_) => break,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return None,
        }
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        match reader.read_line(&mut h) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return None,
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    let mut read = 0;
    while read < length {
        match reader.read(&mut body[read..]) {
            Ok(0) => return None,
            Ok(k) => read += k,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
            }
            Err(_) => return None,
        }
    }
    Some((headers, body))
}

fn answer(
    b: &Behaviour,
    n: u64,
    headers: &[(String, String)],
    body: &[u8],
    counters: &Counters,
    model: &(dyn Fn(&[f64]) -> f64 + Send + Sync),
    stop: &AtomicBool,
) -> Option<(u16, &'static str, String)> {
    if b.hang {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
        return None;
    }
    if !b.delay.is_zero() {
        std::thread::sleep(b.delay);
    }
    if let Some(required) = &b.require_authorization {
        let given = headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v);
        if given != Some(required) {
            return Some((
                401,
                "text/plain",
                "missing or wrong Authorization".to_string(),
            ));
        }
    }
    if let Some(status) = b.status {
        return Some((
            status,
            "text/plain",
            format!("the test server answers {status}"),
        ));
    }
    if b.fail_every.is_some_and(|k| n % k == 0) {
        return Some((
            500,
            "text/plain",
            "transient failure (every k-th request)".to_string(),
        ));
    }
    if b.html {
        return Some((
            200,
            "text/html",
            "<html><body><h1>502 Bad Gateway</h1></body></html>".to_string(),
        ));
    }
    let spend: Option<Vec<Vec<f64>>> = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| serde_json::from_value(v.get("spend")?.clone()).ok());
    let Some(spend) = spend else {
        return Some((
            400,
            "text/plain",
            "expected {\"spend\": [[...], ...]}".to_string(),
        ));
    };
    counters
        .points
        .fetch_add(spend.len() as u64, Ordering::Relaxed);
    counters
        .largest_batch
        .fetch_max(spend.len(), Ordering::Relaxed);
    let mut values: Vec<String> = spend.iter().map(|x| format!("{:?}", model(x))).collect();
    if b.drop_one_value {
        values.pop();
    }
    if b.nan && !values.is_empty() {
        values[0] = "NaN".to_string();
    }
    let mut text = format!("{{\"response\": [{}]", values.join(", "));
    if b.gradients {
        let rows: Vec<String> = spend
            .iter()
            .map(|x| {
                let mut g = vec![0.0; x.len()];
                crate::external::central_differences(
                    |points| points.iter().map(|p| model(p)).collect(),
                    x,
                    f64::EPSILON,
                    &mut g,
                );
                format!(
                    "[{}]",
                    g.iter()
                        .map(|v| format!("{v:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect();
        text.push_str(&format!(", \"gradient\": [{}]", rows.join(", ")));
    }
    text.push('}');
    Some((200, "application/json", text))
}
