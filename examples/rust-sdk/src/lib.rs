//! What both programs take from the environment, as the AWS SDKs' environment provider reads it:
//! `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` and `AWS_REGION`.

use aws_credential_types::Credentials;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

/// The credentials in the environment.
#[must_use]
pub fn credentials() -> Credentials {
    Credentials::new(
        env("AWS_ACCESS_KEY_ID"),
        env("AWS_SECRET_ACCESS_KEY"),
        None,
        None,
        "environment",
    )
}

/// The region in the environment.
#[must_use]
pub fn region() -> String {
    env("AWS_REGION")
}
