//! A static file server on 127.0.0.1 standing in for a release download site.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Serves fixed files by path (`GET` only); anything else is 404.
pub struct FileServer {
    port: u16,
    requested: Arc<Mutex<Vec<String>>>,
}

impl FileServer {
    /// Starts serving `files` (`(path, bytes)`) on a free port.
    pub fn start(files: Vec<(String, Vec<u8>)>) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind file server");
        let port = listener.local_addr().unwrap().port();
        let files: Arc<HashMap<String, Vec<u8>>> = Arc::new(files.into_iter().collect());
        let requested = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requested);
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { break };
                let (files, log) = (Arc::clone(&files), Arc::clone(&log));
                thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                            break;
                        }
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    log.lock().unwrap().push(path.clone());
                    let head = |status: &str, len: usize| {
                        format!(
                            "HTTP/1.1 {status}\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
                        )
                    };
                    let _ = match files.get(&path) {
                        Some(body) if line.starts_with("GET ") => conn
                            .write_all(head("200 OK", body.len()).as_bytes())
                            .and_then(|_| conn.write_all(body)),
                        _ => conn.write_all(head("404 Not Found", 0).as_bytes()),
                    };
                });
            }
        });
        FileServer { port, requested }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The paths requested so far, in order.
    pub fn requested(&self) -> Vec<String> {
        self.requested.lock().unwrap().clone()
    }
}
