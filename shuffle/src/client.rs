//! A connection to another process's endpoint: control messages as Flight actions and batch
//! streams through `do_get`, every request carrying the cluster's token.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{Action, FlightClient};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

use crate::endpoint::{CONNECTION_WINDOW_BYTES, FRAME_BYTES, STREAM_WINDOW_BYTES};
use crate::error::{Result, ShuffleError};
use crate::messages::Ticket;
use crate::security::Security;

/// The largest message accepted: batches are sent in messages of about 2 MiB, but one row
/// group of wide strings can be larger.
const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client of one endpoint.
pub struct Peer {
    address: String,
    client: FlightClient,
}

/// Connections to the endpoints a process talks to, opened once per address and shared.
#[derive(Default)]
pub struct Peers {
    security: Security,
    channels: Mutex<HashMap<String, Channel>>,
}

impl Peers {
    /// Connections made with `security`.
    pub fn new(security: Security) -> Peers {
        Peers {
            security,
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// A client of `address`, over its open connection if there is one.
    pub async fn get(&self, address: &str) -> Result<Peer> {
        let open = self
            .channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(address)
            .cloned();
        let channel = match open {
            Some(channel) => channel,
            None => {
                let channel = connect(address, &self.security).await?;
                self.channels
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(address.to_string(), channel.clone());
                channel
            }
        };
        Peer::over(address, channel, &self.security)
    }

    /// Closes the connection to `address` (a peer that died).
    pub fn forget(&self, address: &str) {
        self.channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(address);
    }
}

impl Peer {
    /// Connects to `address` (`host:port`, or a URL with `http://` or `https://`).
    pub async fn connect(address: &str, security: &Security) -> Result<Peer> {
        let channel = connect(address, security).await?;
        Peer::over(address, channel, security)
    }

    fn over(address: &str, channel: Channel, security: &Security) -> Result<Peer> {
        let inner = FlightServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let mut client = FlightClient::new_from_inner(inner);
        if let Some(bearer) = security.bearer() {
            client
                .add_header("authorization", &bearer)
                .map_err(|error| ShuffleError::Invalid(format!("bad token: {error}")))?;
        }
        Ok(Peer {
            address: address.to_string(),
            client,
        })
    }
    /// The address this peer was reached at.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Sends control message `name` with `body` and decodes the reply.
    pub async fn action<T: DeserializeOwned>(
        &mut self,
        name: &str,
        body: &impl Serialize,
    ) -> Result<T> {
        let body = serde_json::to_vec(body).map_err(ShuffleError::codec("encode a message"))?;
        let action = Action::new(name, body);
        let mut replies = self
            .client
            .do_action(action)
            .await
            .map_err(|error| self.error(error))?;
        let reply = replies
            .next()
            .await
            .ok_or_else(|| ShuffleError::Remote {
                address: self.address.clone(),
                message: format!("no reply to {name}"),
            })?
            .map_err(|error| self.error(error))?;
        serde_json::from_slice(&reply).map_err(ShuffleError::codec("decode a reply"))
    }

    /// The batches `ticket` asks for, as they arrive.
    pub async fn stream(
        &mut self,
        ticket: &Ticket,
    ) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        let ticket = serde_json::to_vec(ticket).map_err(ShuffleError::codec("encode a ticket"))?;
        let batches = self
            .client
            .do_get(arrow_flight::Ticket::new(ticket))
            .await
            .map_err(|error| self.error(error))?;
        let address = self.address.clone();
        Ok(batches
            .map_err(move |error| flight_error(&address, error))
            .boxed())
    }

    /// All the batches `ticket` asks for.
    pub async fn fetch(&mut self, ticket: &Ticket) -> Result<Vec<RecordBatch>> {
        self.stream(ticket).await?.try_collect().await
    }

    fn error(&self, error: FlightError) -> ShuffleError {
        flight_error(&self.address, error)
    }
}

/// Opens a connection to `address`.
async fn connect(address: &str, security: &Security) -> Result<Channel> {
    let url = if address.contains("://") {
        address.to_string()
    } else if security.tls.is_some() {
        format!("https://{address}")
    } else {
        format!("http://{address}")
    };
    let mut endpoint = Endpoint::from_shared(url.clone())
        .map_err(|error| ShuffleError::Invalid(format!("bad address {address}: {error}")))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(STREAM_WINDOW_BYTES))
        .initial_connection_window_size(Some(CONNECTION_WINDOW_BYTES))
        .max_frame_size(Some(FRAME_BYTES));
    if let Some(tls) = security.client_tls()? {
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|error| ShuffleError::Invalid(format!("bad TLS for {url}: {error}")))?;
    }
    endpoint
        .connect()
        .await
        .map_err(|error| ShuffleError::Unreachable {
            address: address.to_string(),
            message: source_chain(&error),
        })
}

fn flight_error(address: &str, error: FlightError) -> ShuffleError {
    let address = address.to_string();
    match error {
        FlightError::Tonic(status) => match status.code() {
            Code::Unauthenticated => ShuffleError::Unauthenticated {
                address,
                message: status.message().to_string(),
            },
            Code::NotFound => ShuffleError::NotFound {
                address,
                message: status.message().to_string(),
            },
            // A dead process shows as an unavailable peer or a broken stream.
            Code::Unavailable | Code::Unknown | Code::Cancelled => ShuffleError::Unreachable {
                address,
                message: status.message().to_string(),
            },
            _ => ShuffleError::Remote {
                address,
                message: status.message().to_string(),
            },
        },
        other => ShuffleError::Remote {
            address,
            message: other.to_string(),
        },
    }
}

/// An error with its causes, for transport errors whose own text says little.
fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
