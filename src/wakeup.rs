//! A descriptor an event loop watches, that any thread can make readable: how the runtime's
//! threads wake an asyncio loop (see `py_hub.rs`) without taking the GIL.
//!
//! Three kinds, each where the platform has it:
//! - [`Kind::EventFd`] (Linux, Android): one descriptor holding a counter; a write makes it
//!   readable, one read drains it.
//! - [`Kind::Pipe`] (every Unix, macOS included): a non-blocking pipe; a byte makes the read end
//!   readable, reading until it would block drains it.
//! - [`Kind::Socket`] (everywhere): a connected pair of loopback TCP sockets, as Python's
//!   `socket.socketpair()` builds it on Windows, where a selector loop's `add_reader` takes
//!   sockets only. It is the same code on every platform, so the Windows path runs in the Linux
//!   tests too.
//!
//! Signalling never blocks: when the pipe or the socket buffer is full (or the eventfd counter
//! saturated), the descriptor is readable already, which is all the signal is for.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};

/// Which descriptor a [`Wakeup`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Linux's `eventfd(2)`.
    EventFd,
    /// A Unix pipe.
    Pipe,
    /// A loopback TCP socket pair.
    Socket,
}

impl Kind {
    /// Every kind, in the order of preference.
    pub const ALL: [Kind; 3] = [Kind::EventFd, Kind::Pipe, Kind::Socket];

    /// The kind's name, as `SAGESTREAM_HUB_WAKEUP` spells it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Kind::EventFd => "eventfd",
            Kind::Pipe => "pipe",
            Kind::Socket => "socket",
        }
    }

    /// The kind named `name`, if there is one.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Whether this platform has it.
    #[must_use]
    pub fn available(self) -> bool {
        match self {
            Kind::EventFd => cfg!(any(target_os = "linux", target_os = "android")),
            Kind::Pipe => cfg!(unix),
            Kind::Socket => true,
        }
    }

    /// The cheapest kind this platform has: eventfd on Linux, a pipe on other Unix systems,
    /// a socket pair elsewhere (Windows).
    #[must_use]
    pub fn platform_default() -> Self {
        Self::ALL
            .into_iter()
            .find(|kind| kind.available())
            .unwrap_or(Kind::Socket)
    }
}

/// The raw descriptor an event loop is given: a file descriptor on Unix, a `SOCKET` on Windows.
#[cfg(unix)]
pub type RawHandle = std::os::fd::RawFd;
/// The raw descriptor an event loop is given: a file descriptor on Unix, a `SOCKET` on Windows.
#[cfg(windows)]
pub type RawHandle = std::os::windows::io::RawSocket;

enum Inner {
    /// Kept as a `File`: `write(2)` / `read(2)` of 8 bytes is the whole eventfd protocol.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    EventFd(std::fs::File),
    #[cfg(unix)]
    Pipe {
        read: std::io::PipeReader,
        write: std::io::PipeWriter,
    },
    Socket {
        read: TcpStream,
        write: TcpStream,
    },
}

/// A descriptor that becomes readable when [`Wakeup::signal`] is called, until
/// [`Wakeup::drain`].
pub struct Wakeup {
    inner: Inner,
}

impl Wakeup {
    /// A new wake-up descriptor of `kind`; `Unsupported` where the platform lacks it.
    pub fn new(kind: Kind) -> io::Result<Self> {
        let inner = match kind {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Kind::EventFd => Inner::EventFd(eventfd()?),
            #[cfg(unix)]
            Kind::Pipe => {
                let (read, write) = std::io::pipe()?;
                set_nonblocking(&read)?;
                set_nonblocking(&write)?;
                Inner::Pipe { read, write }
            }
            Kind::Socket => {
                let (read, write) = loopback_pair()?;
                Inner::Socket { read, write }
            }
            #[allow(unreachable_patterns)] // every kind exists on Linux
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("{} is not available on this platform", kind.name()),
                ))
            }
        };
        Ok(Self { inner })
    }

    /// Which kind this is.
    #[must_use]
    pub fn kind(&self) -> Kind {
        match self.inner {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Inner::EventFd(_) => Kind::EventFd,
            #[cfg(unix)]
            Inner::Pipe { .. } => Kind::Pipe,
            Inner::Socket { .. } => Kind::Socket,
        }
    }

    /// The descriptor to watch for readability.
    #[must_use]
    pub fn handle(&self) -> RawHandle {
        #[cfg(unix)]
        use std::os::fd::AsRawFd as _;
        #[cfg(windows)]
        use std::os::windows::io::AsRawSocket as _;
        match &self.inner {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Inner::EventFd(file) => file.as_raw_fd(),
            #[cfg(unix)]
            Inner::Pipe { read, .. } => read.as_raw_fd(),
            #[cfg(unix)]
            Inner::Socket { read, .. } => read.as_raw_fd(),
            #[cfg(windows)]
            Inner::Socket { read, .. } => read.as_raw_socket(),
        }
    }

    /// Make the descriptor readable. Never blocks: a full buffer (or counter) is readable
    /// already, so that error is the signal's success.
    pub fn signal(&self) {
        let _ = match &self.inner {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Inner::EventFd(file) => (&*file).write(&1u64.to_ne_bytes()),
            #[cfg(unix)]
            Inner::Pipe { write, .. } => (&*write).write(&[1]),
            Inner::Socket { write, .. } => (&*write).write(&[1]),
        };
    }

    /// Make the descriptor not readable again (the loop's reader callback, before it looks at
    /// what is ready: a signal after this is not lost).
    pub fn drain(&self) {
        match &self.inner {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Inner::EventFd(file) => {
                let mut counter = [0u8; 8];
                let _ = (&*file).read(&mut counter);
            }
            #[cfg(unix)]
            Inner::Pipe { read, .. } => drain_stream(&mut &*read),
            Inner::Socket { read, .. } => drain_stream(&mut &*read),
        }
    }
}

/// Read until the stream would block (or ends, or fails: nothing more to wait for then).
fn drain_stream(stream: &mut impl Read) {
    let mut buf = [0u8; 256];
    while let Ok(n) = stream.read(&mut buf) {
        if n < buf.len() {
            break;
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn eventfd() -> io::Result<std::fs::File> {
    use std::os::fd::FromRawFd as _;
    // SAFETY: eventfd has no memory arguments; the descriptor it returns is checked, then owned
    // by the `File` alone.
    let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh, valid descriptor nobody else owns.
    Ok(unsafe { std::fs::File::from_raw_fd(raw) })
}

#[cfg(unix)]
fn set_nonblocking(fd: &impl std::os::fd::AsRawFd) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: F_GETFL / F_SETFL on a descriptor the caller owns; no memory arguments.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Two connected loopback TCP sockets, both non-blocking, the writer with `TCP_NODELAY` (one
/// byte goes out at once). As Python's `socketpair()` emulation does, the accepted connection
/// must come from the socket just connected: another local process could connect to the
/// listener first.
fn loopback_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let write = TcpStream::connect(listener.local_addr()?)?;
    let ours = write.local_addr()?;
    let read = loop {
        let (read, peer) = listener.accept()?;
        if peer == ours {
            break read;
        }
        // A stranger: dropped, and the next connection looked at.
    };
    write.set_nodelay(true)?;
    read.set_nonblocking(true)?;
    write.set_nonblocking(true)?;
    Ok((read, write))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(wakeup: &Wakeup) -> bool {
        #[cfg(unix)]
        {
            let mut poll = libc::pollfd {
                fd: wakeup.handle(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd on a descriptor the wake-up owns; a short timeout.
            let ready = unsafe { libc::poll(&raw mut poll, 1, 50) };
            ready == 1
        }
        #[cfg(not(unix))]
        {
            let _ = wakeup;
            true
        }
    }

    #[test]
    fn names_round_trip() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(Kind::from_name("call_soon"), None);
        assert!(Kind::platform_default().available());
    }

    #[test]
    fn every_available_kind_signals_and_drains() {
        for kind in Kind::ALL.into_iter().filter(|kind| kind.available()) {
            let wakeup = Wakeup::new(kind).expect("wake-up descriptor");
            assert_eq!(wakeup.kind(), kind);
            assert!(!readable(&wakeup), "{kind:?} readable before a signal");
            wakeup.signal();
            assert!(readable(&wakeup), "{kind:?} not readable after a signal");
            wakeup.drain();
            assert!(!readable(&wakeup), "{kind:?} readable after draining");
            // Many signals, one drain: still one readable descriptor, then none.
            for _ in 0..100_000 {
                wakeup.signal();
            }
            assert!(readable(&wakeup));
            // A socket's peer may still be sending what its own buffer held: drain until quiet.
            let quiet = (0..100).any(|_| {
                wakeup.drain();
                !readable(&wakeup)
            });
            assert!(
                quiet,
                "{kind:?} still readable after draining a full buffer"
            );
        }
    }

    #[test]
    fn unavailable_kinds_say_so() {
        for kind in Kind::ALL.into_iter().filter(|kind| !kind.available()) {
            let err = Wakeup::new(kind).err().expect("unavailable");
            assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        }
    }
}
