//! The one gRPC endpoint each process serves: Arrow Flight, whose `do_get` streams batches
//! (shuffle partitions from workers, query results from the coordinator) and whose
//! `do_action` carries control messages. Requests without the cluster's token are refused
//! before they reach the handler.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult,
};
use bytes::Bytes;
use futures::TryStreamExt;
use futures::stream::{self, BoxStream};
use tonic::metadata::MetadataValue;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

use crate::error::{Result, ShuffleError};
use crate::messages::Ticket;
use crate::partition::compact_views;
use crate::security::Security;

/// Batches streamed in answer to a ticket.
pub type ResultStream = BoxStream<'static, Result<RecordBatch>>;

/// Batches already in hand, as the stream a [`Handler`] answers a ticket with.
pub fn batch_stream(batches: Vec<RecordBatch>) -> ResultStream {
    Box::pin(futures::stream::iter(batches.into_iter().map(Ok)))
}

/// What a process does with the requests its endpoint receives.
#[tonic::async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Answers the control message `name` with body `body` (JSON).
    async fn action(&self, name: &str, body: Bytes) -> Result<Vec<u8>>;
    /// The schema and batches `ticket` asks for.
    async fn stream(&self, ticket: Ticket) -> Result<(SchemaRef, ResultStream)>;
}

/// Serves `handler` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handler: Arc<dyn Handler>,
    security: &Security,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let expected = security
        .bearer()
        .map(|bearer| {
            MetadataValue::try_from(bearer.as_str())
                .map_err(|_| ShuffleError::Invalid("the token must be printable ASCII".into()))
        })
        .transpose()?;
    let authenticate = move |request: Request<()>| -> std::result::Result<Request<()>, Status> {
        match &expected {
            None => Ok(request),
            Some(expected) if request.metadata().get("authorization") == Some(expected) => {
                Ok(request)
            }
            Some(_) => Err(Status::unauthenticated(
                "missing or wrong cluster token (pass the same --token to every process)",
            )),
        }
    };
    let service = FlightServiceServer::with_interceptor(FlightEndpoint { handler }, authenticate);
    let mut builder = Server::builder()
        .initial_stream_window_size(Some(STREAM_WINDOW_BYTES))
        .initial_connection_window_size(Some(CONNECTION_WINDOW_BYTES))
        .max_frame_size(Some(FRAME_BYTES));
    if let Some(tls) = security.server_tls()? {
        builder = builder
            .tls_config(tls)
            .map_err(|error| ShuffleError::Invalid(format!("bad TLS configuration: {error}")))?;
    }
    builder
        .add_service(service)
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
        .map_err(|error| ShuffleError::Invalid(format!("the endpoint stopped: {error}")))
}

/// The size a batch is cut down to before it is sent: big enough for few messages, small
/// enough to stream.
const MESSAGE_BYTES: usize = 8 << 20;

/// `batch` cut into slices of about [`MESSAGE_BYTES`], each holding only the bytes its rows use.
fn message_sized(batch: RecordBatch) -> Vec<Result<RecordBatch>> {
    let (bytes, rows) = (batch.get_array_memory_size(), batch.num_rows());
    let pieces = bytes.div_ceil(MESSAGE_BYTES).clamp(1, rows.max(1));
    let step = rows.div_ceil(pieces).max(1);
    (0..rows)
        .step_by(step)
        .map(|offset| compact_views(batch.slice(offset, step.min(rows - offset))))
        .collect()
}

/// HTTP/2 flow-control windows: the defaults (64 KiB) hold loopback transfers to a fraction of
/// what the socket carries.
pub(crate) const STREAM_WINDOW_BYTES: u32 = 16 << 20;
pub(crate) const CONNECTION_WINDOW_BYTES: u32 = 64 << 20;
/// The largest HTTP/2 frame a process accepts (the default, 16 KiB, splits each message into
/// hundreds of frames).
pub(crate) const FRAME_BYTES: u32 = 1 << 20;

struct FlightEndpoint {
    handler: Arc<dyn Handler>,
}

type Reply<T> = std::result::Result<Response<T>, Status>;
type Boxed<T> = Pin<Box<dyn futures::Stream<Item = std::result::Result<T, Status>> + Send>>;

fn status_of(error: ShuffleError) -> Status {
    match error {
        ShuffleError::Invalid(message) => Status::invalid_argument(message),
        ShuffleError::MissingOutput { .. } => Status::not_found(error.to_string()),
        other => Status::internal(other.to_string()),
    }
}

#[tonic::async_trait]
impl FlightService for FlightEndpoint {
    type HandshakeStream = Boxed<HandshakeResponse>;
    type ListFlightsStream = Boxed<FlightInfo>;
    type DoGetStream = Boxed<FlightData>;
    type DoPutStream = Boxed<PutResult>;
    type DoExchangeStream = Boxed<FlightData>;
    type DoActionStream = Boxed<arrow_flight::Result>;
    type ListActionsStream = Boxed<ActionType>;

    async fn do_get(&self, request: Request<arrow_flight::Ticket>) -> Reply<Self::DoGetStream> {
        let ticket: Ticket = serde_json::from_slice(&request.into_inner().ticket)
            .map_err(|error| Status::invalid_argument(format!("unreadable ticket: {error}")))?;
        let (schema, batches) = self.handler.stream(ticket).await.map_err(status_of)?;
        let batches = batches
            .map_ok(|batch| futures::stream::iter(message_sized(batch)))
            .try_flatten()
            .map_err(|error| FlightError::ExternalError(Box::new(error)));
        // The batches are already message-sized: the encoder's own split slices view columns
        // without compacting them, so every slice would carry the batch's whole string buffers.
        let encoded = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .with_max_flight_data_size(usize::MAX)
            .build(batches)
            .map_err(|error| match error {
                FlightError::Tonic(status) => *status,
                other => Status::internal(other.to_string()),
            });
        Ok(Response::new(Box::pin(encoded)))
    }

    async fn do_action(&self, request: Request<Action>) -> Reply<Self::DoActionStream> {
        let action = request.into_inner();
        let body = self
            .handler
            .action(&action.r#type, action.body)
            .await
            .map_err(status_of)?;
        let reply = arrow_flight::Result { body: body.into() };
        Ok(Response::new(Box::pin(stream::once(async { Ok(reply) }))))
    }

    async fn handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Reply<Self::HandshakeStream> {
        Err(Status::unimplemented(
            "handshake: send the token as a bearer token",
        ))
    }

    async fn list_flights(&self, _request: Request<Criteria>) -> Reply<Self::ListFlightsStream> {
        Err(Status::unimplemented("list_flights"))
    }

    async fn get_flight_info(&self, _request: Request<FlightDescriptor>) -> Reply<FlightInfo> {
        Err(Status::unimplemented("get_flight_info"))
    }

    async fn poll_flight_info(&self, _request: Request<FlightDescriptor>) -> Reply<PollInfo> {
        Err(Status::unimplemented("poll_flight_info"))
    }

    async fn get_schema(&self, _request: Request<FlightDescriptor>) -> Reply<SchemaResult> {
        Err(Status::unimplemented("get_schema"))
    }

    async fn do_put(&self, _request: Request<Streaming<FlightData>>) -> Reply<Self::DoPutStream> {
        Err(Status::unimplemented("do_put"))
    }

    async fn do_exchange(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Reply<Self::DoExchangeStream> {
        Err(Status::unimplemented("do_exchange"))
    }

    async fn list_actions(&self, _request: Request<Empty>) -> Reply<Self::ListActionsStream> {
        Ok(Response::new(Box::pin(stream::empty())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray, StringViewArray};
    use arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn large_batches_are_cut_into_compact_slices_covering_every_row() {
        let values: Vec<String> = (0..600_000)
            .map(|i| format!("a string longer than twelve bytes {i}"))
            .collect();
        let column = StringViewArray::from_iter_values(values.iter());
        let schema = Arc::new(Schema::new(vec![Field::new(
            "s",
            DataType::Utf8View,
            false,
        )]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(column)]).unwrap();
        let whole = batch.get_array_memory_size();
        assert!(whole > 2 * MESSAGE_BYTES);

        let slices: Vec<RecordBatch> = message_sized(batch)
            .into_iter()
            .collect::<Result<_>>()
            .unwrap();
        assert!(slices.len() > 1);
        let mut seen = Vec::new();
        for slice in &slices {
            // Each slice holds its own strings only, not the whole batch's buffers.
            assert!(
                slice.get_array_memory_size() < whole / 2,
                "{} of {whole}",
                slice.get_array_memory_size()
            );
            let strings = slice.column(0).as_string_view();
            seen.extend((0..strings.len()).map(|row| strings.value(row).to_string()));
        }
        assert_eq!(seen, values);
    }
}
