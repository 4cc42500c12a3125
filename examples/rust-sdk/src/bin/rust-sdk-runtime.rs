//! `rust-sdk-runtime`: the AWS SDK for Rust (`aws-sdk-sagemakerruntime`) calling InvokeEndpoint,
//! InvokeEndpointWithResponseStream and InvokeEndpointAsync, unchanged, against a plain-HTTP
//! endpoint URL (the emulator's).
//!
//! ```text
//! rust-sdk-runtime invoke URL ENDPOINT [PREFIX_AWARE_ID]   # body from stdin
//! rust-sdk-runtime stream URL ENDPOINT [PREFIX_AWARE_ID]   # body from stdin, one line a part
//! rust-sdk-runtime async URL ENDPOINT                      # inline body from stdin
//! ```
//!
//! Each prints `request-id ID` first, then what the operation answers (`body TEXT`,
//! `part TEXT` per payload part, `inference-id ID` and `output-location URI`), or
//! `error CODE MESSAGE` when the service refuses the call. Credentials come from
//! `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, the region from `AWS_REGION`.

use std::io::Read;

use aws_sdk_sagemakerruntime::config::Region;
use aws_sdk_sagemakerruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sagemakerruntime::operation::RequestId;
use aws_sdk_sagemakerruntime::types::ResponseStream;
use aws_sdk_sagemakerruntime::Client;
use aws_smithy_types::Blob;

fn client(url: &str) -> Client {
    let config = aws_sdk_sagemakerruntime::Config::builder()
        .region(Region::new(rust_sdk_clients::region()))
        .credentials_provider(rust_sdk_clients::credentials())
        .endpoint_url(url)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    Client::from_conf(config)
}

fn stdin_body() -> Blob {
    let mut body = Vec::new();
    std::io::stdin()
        .read_to_end(&mut body)
        .expect("read the body from stdin");
    Blob::new(body)
}

fn text(bytes: Option<&Blob>) -> String {
    String::from_utf8_lossy(bytes.map(Blob::as_ref).unwrap_or_default()).into_owned()
}

/// The service's refusal as one line; anything else (no answer at all) is a failure.
fn refused<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    err: SdkError<E, R>,
) {
    match err {
        SdkError::ServiceError(service) => {
            let err = service.into_err();
            println!(
                "error {} {}",
                err.code().unwrap_or("-"),
                err.message().unwrap_or("-")
            );
        }
        other => panic!("no answer from the service: {other:?}"),
    }
}

async fn invoke(client: &Client, endpoint: &str, prefix_aware_id: Option<String>) {
    let sent = client
        .invoke_endpoint()
        .endpoint_name(endpoint)
        .content_type("application/json")
        .set_prefix_aware_id(prefix_aware_id)
        .body(stdin_body())
        .send()
        .await;
    match sent {
        Ok(output) => {
            println!("request-id {}", output.request_id().unwrap_or("-"));
            println!("body {}", text(output.body()));
        }
        Err(err) => refused(err),
    }
}

async fn stream(client: &Client, endpoint: &str, prefix_aware_id: Option<String>) {
    let sent = client
        .invoke_endpoint_with_response_stream()
        .endpoint_name(endpoint)
        .content_type("application/json")
        .set_prefix_aware_id(prefix_aware_id)
        .body(stdin_body())
        .send()
        .await;
    let mut output = match sent {
        Ok(output) => output,
        Err(err) => return refused(err),
    };
    println!("request-id {}", output.request_id().unwrap_or("-"));
    loop {
        match output.body.recv().await {
            Ok(Some(ResponseStream::PayloadPart(part))) => {
                println!("part {}", text(part.bytes()));
            }
            Ok(Some(_)) => println!("unknown-event"),
            Ok(None) => break,
            Err(err) => {
                let err = err.into_service_error();
                println!(
                    "error {} {}",
                    err.code().unwrap_or("-"),
                    err.message().unwrap_or("-")
                );
                break;
            }
        }
    }
}

async fn invoke_async(client: &Client, endpoint: &str) {
    let sent = client
        .invoke_endpoint_async()
        .endpoint_name(endpoint)
        .content_type("application/octet-stream")
        .body(stdin_body())
        .send()
        .await;
    match sent {
        Ok(output) => {
            println!("request-id {}", output.request_id().unwrap_or("-"));
            println!("inference-id {}", output.inference_id().unwrap_or("-"));
            println!(
                "output-location {}",
                output.output_location().unwrap_or("-")
            );
        }
        Err(err) => refused(err),
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, url, endpoint) = (&args[1], &args[2], &args[3]);
    let client = client(url);
    let prefix_aware_id = args.get(4).cloned();
    match mode.as_str() {
        "invoke" => invoke(&client, endpoint, prefix_aware_id).await,
        "stream" => stream(&client, endpoint, prefix_aware_id).await,
        "async" => invoke_async(&client, endpoint).await,
        other => panic!("unknown mode {other}"),
    }
}
