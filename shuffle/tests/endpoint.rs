//! An endpoint and a peer on loopback: actions and streams go through with the cluster's
//! token, and are refused without it.

use std::sync::Arc;

use arrow::array::Int64Array;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use sabot_shuffle::{
    Handler, OutputStore, Peer, Result, ResultStream, Security, ShuffleError, Ticket, batch_stream,
    serve,
};

/// Echoes actions and serves shuffle tickets from a store.
struct Echo {
    store: OutputStore,
}

#[tonic::async_trait]
impl Handler for Echo {
    async fn action(&self, name: &str, body: Bytes) -> Result<Vec<u8>> {
        let text: String = serde_json::from_slice(&body).unwrap();
        Ok(serde_json::to_vec(&format!("{name}:{text}")).unwrap())
    }

    async fn stream(&self, ticket: Ticket) -> Result<(SchemaRef, ResultStream)> {
        let Ticket::Shuffle {
            query,
            stage,
            task,
            bucket,
        } = ticket
        else {
            return Err(ShuffleError::Invalid("shuffle tickets only".into()));
        };
        let (schema, batches) = self.store.get((query, stage, task), bucket)?;
        Ok((schema, batch_stream(batches)))
    }
}

fn batch(values: std::ops::Range<i64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(values))]).unwrap()
}

async fn start(security: Security, store: OutputStore) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let handler: Arc<dyn Handler> = Arc::new(Echo { store });
    tokio::spawn(async move {
        serve(listener, handler, &security, futures::future::pending())
            .await
            .unwrap()
    });
    address
}

fn with_token(token: &str) -> Security {
    Security {
        token: Some(token.to_string()),
        tls: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_and_actions_go_through_with_the_token_and_are_refused_without() {
    let dir = tempfile::tempdir().unwrap();
    let store = OutputStore::new(dir.path(), 1 << 30);
    let (first, second) = (batch(0..5), batch(5..200_000));
    store
        .insert(
            (7, 1, 2),
            &first.schema(),
            vec![vec![], vec![first.clone(), second.clone()]],
        )
        .unwrap();
    let address = start(with_token("s3cret"), store).await;

    let mut peer = Peer::connect(&address, &with_token("s3cret"))
        .await
        .unwrap();
    let reply: String = peer.action("ping", &"hello").await.unwrap();
    assert_eq!(reply, "ping:hello");
    let ticket = Ticket::Shuffle {
        query: 7,
        stage: 1,
        task: 2,
        bucket: 1,
    };
    let fetched = peer.fetch(&ticket).await.unwrap();
    let rows: Vec<i64> = fetched
        .iter()
        .flat_map(|batch| {
            let values = batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            values.values().to_vec()
        })
        .collect();
    assert_eq!(rows, (0..200_000).collect::<Vec<i64>>());
    let missing = Ticket::Shuffle {
        query: 8,
        stage: 1,
        task: 2,
        bucket: 1,
    };
    let error = peer.fetch(&missing).await.unwrap_err();
    assert!(
        error.to_string().contains("no shuffle output for query 8"),
        "{error}"
    );

    for security in [Security::default(), with_token("wrong")] {
        let mut intruder = Peer::connect(&address, &security).await.unwrap();
        let refused = intruder.action::<String>("ping", &"x").await.unwrap_err();
        assert!(
            matches!(refused, ShuffleError::Unauthenticated { .. }),
            "{refused}"
        );
        let refused = intruder.fetch(&ticket).await.unwrap_err();
        assert!(
            matches!(refused, ShuffleError::Unauthenticated { .. }),
            "{refused}"
        );
    }
}

#[tokio::test]
async fn a_peer_that_is_not_there_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    let error = match Peer::connect(&address, &Security::default()).await {
        Ok(mut peer) => peer.action::<String>("ping", &"x").await.unwrap_err(),
        Err(error) => error,
    };
    assert!(error.is_unreachable(), "{error}");
    assert!(error.to_string().contains(&address), "{error}");
}
