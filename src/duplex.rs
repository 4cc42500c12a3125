//! One `InvokeEndpointWithBidirectionalStream` session, pyo3-free: the request goes out on
//! HTTP/2 with a body that streams the input events, each a `PayloadPart` message
//! (`aws-smithy-eventstream`) wrapped and signed in a chain from the request's signature
//! ([`crate::sign::ChainSigner`]), the signed empty message at the end; the response is read
//! by the same reader as every response stream ([`crate::pump::pump`]) into a
//! [`PartStream`] whose parts carry their `DataType` / `CompletionState`.
//!
//! The input is a bounded queue of messages: a sender that outpaces the connection (HTTP/2
//! flow control, the peer's reading) waits for room, so memory stays bounded by the queue.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderValue as HttpHeaderValue, Method, Uri};
use http_body::Frame;
use http_body_util::BodyExt;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use crate::pump::pump;
use crate::sign::{ChainSigner, SignError, Signer};
use crate::stream::{Failure, PartStream, EVENTSTREAM};
use crate::transport::{
    header_pairs, Deadline, PendingResponse, ResponseBody, StreamBody, StreamSlot, Transport,
    TransportError,
};

/// The largest input part, in bytes: its signed outer message must stay under the event
/// stream's 24 MiB payload cap.
pub const MAX_INPUT_PART: usize = 16 * 1024 * 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One input event: the bytes and the `DataType` / `CompletionState` / `P` headers.
#[derive(Debug, Clone, Default)]
pub struct InputPart {
    pub data: Bytes,
    pub data_type: Option<String>,
    pub completion_state: Option<String>,
    pub padding: Option<String>,
}

impl InputPart {
    /// The `PayloadPart` message, its headers in the order the AWS SDKs write them.
    #[must_use]
    pub fn message(self) -> Message {
        let text = |name: &'static str, value: String| {
            Header::new(name, HeaderValue::String(value.into()))
        };
        let mut headers = vec![
            text(":message-type", "event".to_owned()),
            text(":event-type", "PayloadPart".to_owned()),
        ];
        for (name, value) in [
            ("DataType", self.data_type),
            ("CompletionState", self.completion_state),
            ("P", self.padding),
        ] {
            if let Some(value) = value {
                headers.push(text(name, value));
            }
        }
        headers.push(text(":content-type", "application/octet-stream".to_owned()));
        Message::new_from_parts(headers, self.data)
    }
}

/// The request body: queued messages, signed as they are sent.
struct InputBody {
    queue: mpsc::Receiver<Message>,
    /// Fires (or is dropped) when the session is abandoned: the stream is reset.
    abort: oneshot::Receiver<()>,
    signer: ChainSigner,
    done: bool,
    failure: Arc<Mutex<Option<String>>>,
}

/// Signed messages queued together go out in one DATA frame, up to this many bytes.
const BATCH_BYTES: usize = 64 * 1024;

impl InputBody {
    /// A body of the messages sent on the sender that comes with it (`capacity` of them may
    /// wait), signed in a chain by `signer`; firing or dropping the abort resets the stream.
    fn new(
        capacity: usize,
        signer: ChainSigner,
    ) -> (Self, mpsc::Sender<Message>, oneshot::Sender<()>) {
        let (tx, rx) = mpsc::channel(capacity);
        let (abort_tx, abort_rx) = oneshot::channel();
        let body = Self {
            queue: rx,
            abort: abort_rx,
            signer,
            done: false,
            failure: Arc::new(Mutex::new(None)),
        };
        (body, tx, abort_tx)
    }

    /// Sign `message` (None: the end of the input) onto `out`.
    fn sign_into(&mut self, message: Option<&Message>, out: &mut Vec<u8>) -> Result<(), String> {
        let now = SystemTime::now();
        let signed = match message {
            Some(message) => self.signer.sign(message, now),
            None => self.signer.sign_end(now),
        };
        signed
            .map_err(|e| e.to_string())
            .and_then(|m| write_message_to(&m, out).map_err(|e| e.to_string()))
    }

    /// `first`, then whatever else is queued already (and the end, if the input is over),
    /// signed in order into one frame: a sender that queued many parts costs one write.
    fn batch(&mut self, first: Option<Message>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut out = Vec::new();
        let mut next = first;
        let mut result = Ok(());
        loop {
            let end = next.is_none();
            result = result.and_then(|()| self.sign_into(next.as_ref(), &mut out));
            if end {
                self.done = true;
                break;
            }
            if result.is_err() || out.len() >= BATCH_BYTES {
                break;
            }
            next = match self.queue.try_recv() {
                Ok(message) => Some(message),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            };
        }
        match result {
            Ok(()) => Poll::Ready(Some(Ok(Frame::data(Bytes::from(out))))),
            Err(why) => {
                self.done = true;
                *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(why.clone());
                Poll::Ready(Some(Err(why.into())))
            }
        }
    }
}

impl http_body::Body for InputBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if Pin::new(&mut this.abort).poll(cx).is_ready() {
            this.done = true;
            return Poll::Ready(Some(Err("the session was closed".into())));
        }
        match this.queue.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            // None: the input is over; the signed empty message ends the chain, then the stream.
            Poll::Ready(message) => this.batch(message),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

/// Why a part could not be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// `close_input` was called already.
    InputClosed,
    /// The stream no longer takes input (it ended, failed, or was closed).
    Gone,
}

/// What became of a part handed to [`Duplex::try_queue`].
pub enum Queued {
    /// It is in the input queue.
    Sent,
    /// The queue is full: [`Room::queue`] waits for room.
    Full(Room),
    /// It cannot be sent.
    Refused(SendError),
}

/// A part waiting for room in the input queue.
pub struct Room {
    sender: mpsc::Sender<Message>,
    message: Message,
    size: usize,
}

impl Room {
    /// Queue the part once there is room.
    ///
    /// # Errors
    /// `Gone`: the stream stopped taking input meanwhile.
    pub async fn queue(self, duplex: &Duplex) -> Result<(), SendError> {
        self.sender
            .send(self.message)
            .await
            .map_err(|_| SendError::Gone)?;
        duplex.sent(self.size);
        Ok(())
    }
}

/// Why input was not sent, as the caller is told.
#[derive(Debug, Clone, PartialEq)]
pub enum NotSent {
    /// The input is closed: by `close_input`, or because it could not be signed or encoded.
    InputClosed(String),
    /// The stream's own failure (an error answer, a lost connection).
    Failed(Failure),
}

/// Resets the input when fired (once), or when the last holder is dropped unfired — so the
/// reader task holds one: closing the output (which stops that task) resets the input too.
#[derive(Clone)]
struct Abort(Arc<Mutex<Option<oneshot::Sender<()>>>>);

impl Abort {
    fn fire(&self) {
        if let Some(abort) = self.0.lock().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = abort.send(());
        }
    }
}

/// Held by the reader task: its end (the output's) ends the input and gives the stream's place
/// on its connection back.
struct OnOutputEnd(Abort, Slot);

impl Drop for OnOutputEnd {
    fn drop(&mut self) {
        self.0.fire();
        self.1.release();
    }
}

/// The session's place on its HTTP/2 connection, given back once, by whichever comes first:
/// `close` (at once, so that the next session can take it) or the end of the reader task.
#[derive(Clone)]
struct Slot(Arc<Mutex<Option<StreamSlot>>>);

impl Slot {
    fn release(&self) {
        drop(self.0.lock().unwrap_or_else(PoisonError::into_inner).take());
    }
}

/// The shared state of one session.
pub struct Duplex {
    input: Mutex<Option<mpsc::Sender<Message>>>,
    abort: Abort,
    slot: Slot,
    /// The output parts (and the failure that ends them).
    pub output: Arc<PartStream>,
    /// Status and headers of the answer, once they arrived.
    head: Mutex<Option<(u16, HeaderMap)>>,
    /// Why the input could not be signed or encoded, if that ended it.
    input_failure: Arc<Mutex<Option<String>>>,
    sent_parts: AtomicU64,
    sent_bytes: AtomicU64,
}

/// What a session is opened with.
pub struct DuplexSpec {
    pub uri: Uri,
    /// Signed (`host` and the `X-Amzn-SageMaker-*` ones).
    pub headers: HeaderMap,
    /// Added after signing (`User-Agent`, ...).
    pub after: HeaderMap,
    pub deadline: Option<f64>,
    /// Input messages queued before `send` waits.
    pub queue: usize,
    /// The most bytes of an error answer's body read.
    pub error_limit: usize,
}

/// Sign the request of `spec`: its headers, and the chain signer its body continues with.
///
/// # Errors
/// `NoCredentials`, or `Invalid`.
pub fn sign_request(signer: &Signer, spec: &mut DuplexSpec) -> Result<ChainSigner, SignError> {
    if !spec.headers.contains_key(HOST) {
        if let Some(host) =
            Transport::host_header(&spec.uri).and_then(|h| HttpHeaderValue::from_str(&h).ok())
        {
            spec.headers.insert(HOST, host);
        }
    }
    spec.headers
        .insert(CONTENT_TYPE, HttpHeaderValue::from_static(EVENTSTREAM));
    // The AWS SDK for Rust signs this operation's request with the hash of an empty payload
    // and no `x-amz-content-sha256` header; the events are signed one by one after it.
    let seed = signer.sign(
        &Method::POST,
        &spec.uri,
        &mut spec.headers,
        aws_sigv4::http_request::SignableBody::Bytes(&[]),
        SystemTime::now(),
    )?;
    signer.chain(seed)
}

impl Duplex {
    /// Open a session: connect (or reuse the connection), send the request headers, and
    /// return once the request is on its way; the answer is read by a task on the runtime.
    /// `generation` is the shared runtime's.
    ///
    /// # Errors
    /// A transport failure before the request could be sent.
    pub async fn open(
        transport: Arc<Transport>,
        mut spec: DuplexSpec,
        chain: ChainSigner,
        generation: u64,
    ) -> Result<Arc<Self>, TransportError> {
        let deadline = spec.deadline.map(Deadline::after);
        let spec_error_limit = spec.error_limit;
        let (body, tx, abort_tx) = InputBody::new(spec.queue.max(1), chain);
        let input_failure = body.failure.clone();
        for (name, value) in &spec.after {
            spec.headers.insert(name.clone(), value.clone());
        }
        // HTTP/2 carries the host as `:authority`, from the URI (the value that was signed).
        spec.headers.remove(HOST);
        let mut request = http::Request::new(StreamBody::new(body.boxed_unsync()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = spec.uri;
        *request.version_mut() = http::Version::HTTP_2;
        *request.headers_mut() = spec.headers;
        let (pending, slot) = transport.open_h2(request, generation, deadline).await?;
        let duplex = Arc::new(Self {
            input: Mutex::new(Some(tx)),
            abort: Abort(Arc::new(Mutex::new(Some(abort_tx)))),
            slot: Slot(Arc::new(Mutex::new(Some(slot)))),
            output: Arc::new(PartStream::with_meta(None)),
            head: Mutex::new(None),
            input_failure,
            sent_parts: AtomicU64::new(0),
            sent_bytes: AtomicU64::new(0),
        });
        let guard = OnOutputEnd(duplex.abort.clone(), duplex.slot.clone());
        let reader = tokio::spawn(read_answer(
            duplex.clone(),
            pending,
            deadline,
            spec_error_limit,
            guard,
        ));
        duplex.output.set_reader(reader.abort_handle());
        Ok(duplex)
    }

    /// Queue `message` (`size` bytes of data) if there is room now.
    pub fn try_queue(&self, message: Message, size: usize) -> Queued {
        let sender = self
            .input
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(sender) = sender else {
            return Queued::Refused(SendError::InputClosed);
        };
        match sender.try_send(message) {
            Ok(()) => {
                self.sent(size);
                Queued::Sent
            }
            Err(TrySendError::Closed(_)) => Queued::Refused(SendError::Gone),
            Err(TrySendError::Full(message)) => Queued::Full(Room {
                sender,
                message,
                size,
            }),
        }
    }

    /// What to tell a sender whose part was refused for `why`: the stream's own failure when it
    /// has one, else that the input is closed. The stream's answer (an error, most likely) may
    /// still be on its way to the reader when it stopped taking input: this blocks the calling
    /// thread up to a second for it.
    #[must_use]
    pub fn not_sent(&self, why: &SendError) -> NotSent {
        if *why == SendError::InputClosed {
            return NotSent::InputClosed("close_input() was called already".to_owned());
        }
        if let Some(why) = self.input_failure() {
            return NotSent::InputClosed(format!(
                "the input could not be signed or encoded: {why}"
            ));
        }
        for _ in 0..200 {
            match self.output.end() {
                Some(Err(failure)) => return NotSent::Failed(failure),
                Some(Ok(())) => break,
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        NotSent::Failed(Failure::Transport(TransportError::ConnectionLost {
            message: "the endpoint no longer reads this session's input".to_owned(),
        }))
    }

    /// Count a part that was queued.
    fn sent(&self, bytes: usize) {
        self.sent_parts.fetch_add(1, Ordering::Relaxed);
        self.sent_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Parts and bytes sent so far.
    pub fn sent_counts(&self) -> (u64, u64) {
        (
            self.sent_parts.load(Ordering::Relaxed),
            self.sent_bytes.load(Ordering::Relaxed),
        )
    }

    /// End the input: the signed empty message goes out after the queued parts. Idempotent.
    pub fn close_input(&self) {
        self.input
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// Whether `close_input` was called.
    pub fn input_closed(&self) -> bool {
        self.input
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }

    /// Abandon the session: the stream is reset, queued output dropped. Idempotent.
    pub fn close(&self) {
        // The output first (its end is then the close, not the reset that follows), then the
        // abort before the input's end, which would otherwise end the stream cleanly.
        self.output.close();
        self.abort.fire();
        self.close_input();
        self.slot.release();
    }

    /// Status and headers of the answer, once they arrived.
    pub fn head(&self) -> Option<(u16, HeaderMap)> {
        self.head
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Why the input stopped being sent, when that was the client's side.
    fn input_failure(&self) -> Option<String> {
        self.input_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The reader task: wait for the answer, then read its parts (or its error body).
async fn read_answer(
    duplex: Arc<Duplex>,
    pending: PendingResponse,
    deadline: Option<Deadline>,
    error_limit: usize,
    _ends_with_the_output: OnOutputEnd,
) {
    let response = match Deadline::bound(deadline, pending).await {
        Ok(response) => response,
        Err(err) => {
            duplex.output.finish(Err(Failure::Transport(err)));
            return;
        }
    };
    let (parts, incoming) = response.into_parts();
    *duplex.head.lock().unwrap_or_else(PoisonError::into_inner) =
        Some((parts.status.as_u16(), parts.headers.clone()));
    let body = ResponseBody::detached(incoming);
    if parts.status.is_success() {
        pump(duplex.output.clone(), body, deadline).await;
        return;
    }
    let status = parts.status.as_u16();
    let failure = match body.collect(error_limit, status, deadline).await {
        Ok(body) => Failure::Answer {
            status,
            headers: header_pairs(&parts.headers),
            body,
        },
        Err(err) => Failure::Transport(err),
    };
    duplex.output.finish(Err(failure));
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::read_message_from;
    use aws_smithy_types::event_stream::HeaderValue;

    fn header<'a>(message: &'a Message, name: &str) -> &'a HeaderValue {
        message
            .headers()
            .iter()
            .find(|h| h.name().as_str() == name)
            .map(Header::value)
            .unwrap()
    }

    fn messages(mut data: &[u8]) -> Vec<Message> {
        let mut out = Vec::new();
        while !data.is_empty() {
            out.push(read_message_from(&mut data).unwrap());
        }
        out
    }

    #[test]
    fn a_part_is_a_payload_part_message_with_its_headers_in_the_sdks_order() {
        let message = InputPart {
            data: Bytes::from_static(b"hi"),
            data_type: Some("UTF8".into()),
            completion_state: Some("COMPLETE".into()),
            padding: None,
        }
        .message();
        let names: Vec<&str> = message
            .headers()
            .iter()
            .map(|h| h.name().as_str())
            .collect();
        assert_eq!(
            names,
            [
                ":message-type",
                ":event-type",
                "DataType",
                "CompletionState",
                ":content-type"
            ]
        );
        assert_eq!(message.payload().as_ref(), b"hi");
        let bare = InputPart::default().message();
        assert_eq!(bare.headers().len(), 3);
    }

    #[tokio::test]
    async fn queued_parts_go_out_signed_in_a_chain_in_one_frame_then_the_end() {
        let signer = Signer::new("us-east-1", "sagemaker");
        signer.set_credentials("AK", "SK", None);
        let (mut body, tx, _abort) = InputBody::new(8, signer.chain("seed".into()).unwrap());
        for i in 0..3u8 {
            let part = InputPart {
                data: Bytes::from(vec![i]),
                ..InputPart::default()
            };
            tx.send(part.message()).await.unwrap();
        }
        drop(tx);
        let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
        let outer = messages(&frame);
        assert_eq!(outer.len(), 4, "three parts and the end, in one frame");
        assert!(outer[3].payload().is_empty());
        // Each signature continues the chain from the seed, at the message's own :date.
        let mut check = signer.chain("seed".into()).unwrap();
        for (i, message) in outer.iter().enumerate() {
            let HeaderValue::Timestamp(date) = header(message, ":date") else {
                panic!("no :date")
            };
            let time = SystemTime::try_from(*date).unwrap();
            let expected = if i < 3 {
                let inner = read_message_from(&mut &message.payload()[..]).unwrap();
                assert_eq!(inner.payload().as_ref(), [u8::try_from(i).unwrap()]);
                check.sign(&inner, time).unwrap()
            } else {
                check.sign_end(time).unwrap()
            };
            assert_eq!(
                header(message, ":chunk-signature"),
                header(&expected, ":chunk-signature")
            );
        }
        assert!(body.frame().await.is_none());
        assert!(http_body::Body::is_end_stream(&body));
    }

    #[tokio::test]
    async fn an_abandoned_session_resets_its_input() {
        let signer = Signer::new("us-east-1", "sagemaker");
        signer.set_credentials("AK", "SK", None);
        let (mut body, _tx, abort) = InputBody::new(8, signer.chain("seed".into()).unwrap());
        drop(abort);
        assert!(body.frame().await.unwrap().is_err());
        assert!(body.frame().await.is_none());
    }
}
