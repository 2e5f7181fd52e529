//! Readiness for systemd: `sd_notify` written by hand over `$NOTIFY_SOCKET`.
//!
//! A `Type=notify` unit learns that the proxy is ready (listener bound, first detection
//! done), reloading, or stopping from one datagram per state on the unix socket systemd
//! names in `$NOTIFY_SOCKET` (a path, or an abstract name written with a leading `@`).
//! Without the variable every call does nothing, so the same binary runs anywhere.
//! A message that cannot be sent is logged once and never stops the proxy: readiness is
//! advice to the service manager, not part of serving.

use std::os::unix::net::UnixDatagram;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::log;

/// The socket's address from `$NOTIFY_SOCKET`, read once: nothing clears the variable
/// (changing the environment is `unsafe` in edition 2024), so children would inherit it;
/// Routeplane starts none.
fn target() -> Option<&'static str> {
    static TARGET: OnceLock<Option<String>> = OnceLock::new();
    TARGET
        .get_or_init(|| {
            std::env::var("NOTIFY_SOCKET")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .as_deref()
}

/// Tells systemd the service is ready: the listener is bound and the first detection ran.
pub fn ready() {
    send("READY=1\nSTATUS=serving");
}

/// Tells systemd a reload (SIGHUP) started; `ready` ends it.
///
/// Plain `RELOADING=1` suits `Type=notify` with an `ExecReload=` that signals the
/// process. `Type=notify-reload` (systemd 253+, newer than Debian 12 and Raspberry Pi
/// OS ship) would also want `MONOTONIC_USEC=`, which needs `clock_gettime` and so
/// `unsafe` code; the units here do not use it.
pub fn reloading() {
    send("RELOADING=1\nSTATUS=reloading the config");
}

/// Tells systemd the service is stopping (after SIGTERM/SIGINT).
pub fn stopping() {
    send("STOPPING=1\nSTATUS=stopping: waiting for requests in flight");
}

/// Sends one state message, if systemd asked for them.
fn send(state: &str) {
    let Some(target) = target() else { return };
    if let Err(e) = send_to(target, state) {
        static WARNED: AtomicBool = AtomicBool::new(false);
        if !WARNED.swap(true, Ordering::Relaxed) {
            log::line(format!(
                "cannot tell systemd the service state through NOTIFY_SOCKET={target}: {e}"
            ));
        }
    }
}

/// Sends `state` as one datagram to a socket path or an `@abstract` name.
fn send_to(target: &str, state: &str) -> std::io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    let sent = match target.strip_prefix('@') {
        Some(name) => send_abstract(&socket, name, state)?,
        None => socket.send_to(state.as_bytes(), target)?,
    };
    if sent != state.len() {
        return Err(std::io::Error::other("the message was cut short"));
    }
    Ok(())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_abstract(socket: &UnixDatagram, name: &str, state: &str) -> std::io::Result<usize> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    socket.send_to_addr(state.as_bytes(), &addr)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send_abstract(_: &UnixDatagram, _: &str, _: &str) -> std::io::Result<usize> {
    Err(std::io::Error::other(
        "abstract socket names exist only on Linux",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_reaches_a_socket_path() {
        let dir = std::env::temp_dir().join(format!("routeplane-notify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        send_to(path.to_str().unwrap(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_state_reaches_an_abstract_name() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("routeplane-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        send_to(&format!("@{name}"), "STOPPING=1").unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn a_missing_socket_is_an_error_not_a_panic() {
        assert!(send_to("/nonexistent/routeplane/notify.sock", "READY=1").is_err());
    }
}
