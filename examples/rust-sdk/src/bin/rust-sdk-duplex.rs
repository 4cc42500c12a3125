//! `rust-sdk-duplex`: the AWS SDK for Rust (`aws-sdk-sagemakerruntimehttp2`) calling
//! InvokeEndpointWithBidirectionalStream, unchanged, against any endpoint URL.
//!
//! ```text
//! rust-sdk-duplex parts URL CA_PEM ENDPOINT [QUERY]   # parts from stdin lines, output parts as lines
//! rust-sdk-duplex latency URL CA_PEM ENDPOINT ROUNDS     # seconds per round trip of 1 part
//! rust-sdk-duplex throughput URL CA_PEM ENDPOINT N SIZE  # seconds for N parts each way
//! ```
//!
//! `parts` reads input parts from stdin, one per line: `DATA_TYPE COMPLETION_STATE TEXT`
//! (`-` for an absent header), sends them all, and prints one line per output part (the same
//! shape) and, if the stream fails, `error CODE MESSAGE`. Credentials come from
//! `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, the region from `AWS_REGION`.

use std::io::BufRead;
use std::time::Instant;

use aws_sdk_sagemakerruntimehttp2::config::Region;
use aws_sdk_sagemakerruntimehttp2::error::ProvideErrorMetadata;
use aws_sdk_sagemakerruntimehttp2::operation::invoke_endpoint_with_bidirectional_stream::InvokeEndpointWithBidirectionalStreamOutput;
use aws_sdk_sagemakerruntimehttp2::primitives::event_stream::EventStreamSender;
use aws_sdk_sagemakerruntimehttp2::types::error::{
    RequestStreamEventError, ResponseStreamEventError,
};
use aws_sdk_sagemakerruntimehttp2::types::{
    RequestPayloadPart, RequestStreamEvent, ResponseStreamEvent,
};
use aws_sdk_sagemakerruntimehttp2::Client;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_types::Blob;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

type Input = Result<RequestStreamEvent, RequestStreamEventError>;

fn client(url: &str, ca_pem: &str) -> Client {
    let pem = std::fs::read(ca_pem).expect("read the CA file");
    let tls_context = TlsContext::builder()
        .with_trust_store(TrustStore::empty().with_pem_certificate(pem))
        .build()
        .expect("TLS context");
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(tls_context)
        .build_https();
    let config = aws_sdk_sagemakerruntimehttp2::Config::builder()
        .region(Region::new(rust_sdk_clients::region()))
        .credentials_provider(rust_sdk_clients::credentials())
        .endpoint_url(url)
        .http_client(http)
        .build();
    Client::from_conf(config)
}

fn part(data: Vec<u8>, data_type: Option<&str>, state: Option<&str>) -> Input {
    Ok(RequestStreamEvent::PayloadPart(
        RequestPayloadPart::builder()
            .bytes(Blob::new(data))
            .set_data_type(data_type.map(str::to_owned))
            .set_completion_state(state.map(str::to_owned))
            .build(),
    ))
}

fn dash(value: Option<&str>) -> &str {
    value.unwrap_or("-")
}

async fn parts(client: &Client, endpoint: &str, query: Option<String>) {
    let (tx, rx) = mpsc::channel::<Input>(64);
    let lines: Vec<String> = std::io::stdin()
        .lock()
        .lines()
        .map_while(Result::ok)
        .collect();
    let sending = tokio::spawn(async move {
        for line in lines {
            let mut fields = line.splitn(3, ' ');
            let data_type = fields.next().filter(|f| *f != "-");
            let state = fields.next().filter(|f| *f != "-");
            let text = fields.next().unwrap_or("").as_bytes().to_vec();
            if tx.send(part(text, data_type, state)).await.is_err() {
                return;
            }
        }
    });
    let sent = client
        .invoke_endpoint_with_bidirectional_stream()
        .endpoint_name(endpoint)
        .set_model_query_string(query)
        .body(EventStreamSender::from(ReceiverStream::new(rx)))
        .send()
        .await;
    let mut output = match sent {
        Ok(output) => output,
        Err(err) => {
            let err = err.into_service_error();
            println!("error {} - {}", dash(err.code()), dash(err.message()));
            return;
        }
    };
    println!("variant {}", dash(output.invoked_production_variant()));
    loop {
        match output.body.recv().await {
            Ok(Some(ResponseStreamEvent::PayloadPart(p))) => println!(
                "{} {} {}",
                dash(p.data_type()),
                dash(p.completion_state()),
                String::from_utf8_lossy(p.bytes().map(Blob::as_ref).unwrap_or_default())
            ),
            Ok(Some(_)) => println!("unknown-event"),
            Ok(None) => break,
            Err(err) => {
                let err = err.into_service_error();
                let (kind, code) = match &err {
                    ResponseStreamEventError::ModelStreamError(e) => {
                        ("ModelStreamError", e.error_code().map(str::to_owned))
                    }
                    ResponseStreamEventError::InternalStreamFailure(_) => {
                        ("InternalStreamFailure", None)
                    }
                    _ => ("error", err.code().map(str::to_owned)),
                };
                println!(
                    "error {kind} {} {}",
                    dash(code.as_deref()),
                    dash(err.message())
                );
                break;
            }
        }
    }
    let _ = sending.await;
}

/// A session on `endpoint` whose input is what `rx` receives (the benchmarks expect it to open).
async fn session(
    client: &Client,
    endpoint: &str,
    rx: mpsc::Receiver<Input>,
) -> InvokeEndpointWithBidirectionalStreamOutput {
    client
        .invoke_endpoint_with_bidirectional_stream()
        .endpoint_name(endpoint)
        .body(EventStreamSender::from(ReceiverStream::new(rx)))
        .send()
        .await
        .expect("session")
}

/// One session per call: `n` parts of `size` bytes sent while the answer is read; the time from
/// the first send to the last part received, in seconds.
async fn round(client: &Client, endpoint: &str, n: usize, size: usize) -> f64 {
    let (tx, rx) = mpsc::channel::<Input>(256);
    let started = Instant::now();
    let sender = tokio::spawn(async move {
        for _ in 0..n {
            if tx
                .send(part(vec![b'x'; size], Some("BINARY"), None))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let mut output = session(client, endpoint, rx).await;
    let mut got = 0usize;
    while let Ok(Some(_)) = output.body.recv().await {
        got += 1;
    }
    let _ = sender.await;
    assert_eq!(got, n, "parts received");
    started.elapsed().as_secs_f64()
}

/// The time from sending one part to receiving its echo, within one open session.
async fn latency(client: &Client, endpoint: &str, rounds: usize) -> Vec<f64> {
    let (tx, rx) = mpsc::channel::<Input>(4);
    let mut output = session(client, endpoint, rx).await;
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        tx.send(part(b"ping".to_vec(), Some("UTF8"), None))
            .await
            .expect("send");
        match output.body.recv().await {
            Ok(Some(_)) => times.push(started.elapsed().as_secs_f64()),
            other => panic!("no echo: {other:?}"),
        }
    }
    drop(tx);
    while let Ok(Some(_)) = output.body.recv().await {}
    times
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, url, ca, endpoint) = (&args[1], &args[2], &args[3], &args[4]);
    let client = client(url, ca);
    match mode.as_str() {
        "parts" => parts(&client, endpoint, args.get(5).cloned()).await,
        "latency" => {
            let rounds: usize = args[5].parse().expect("ROUNDS");
            latency(&client, endpoint, 20).await; // the connection, warmed
            for t in latency(&client, endpoint, rounds).await {
                println!("{t:.9}");
            }
        }
        "throughput" => {
            let n: usize = args[5].parse().expect("N");
            let size: usize = args[6].parse().expect("SIZE");
            println!("{:.6}", round(&client, endpoint, n, size).await);
        }
        other => panic!("unknown mode {other}"),
    }
}
