//! Batching in the log: the leader gathers the commands of concurrent client calls into one
//! Raft entry. While a few entries are in flight, new calls queue; the next entry takes all
//! of them (up to `MAX_ENTRY_COMMANDS`). Under light load an entry holds one call; under heavy
//! load one entry, one fsync per replica, carries hundreds of commands.

use crate::planted::PlantedBug;
use crate::raft_types::{Applied, LedgerTypes, NodeAddr, Proposal, ProposalBody};
use crate::stamp::Stamper;
use ledger_core::command::Envelope;
use ledger_core::Outcome;
use ledger_wire::api::{ApiError, NodeInfo};
use openraft::error::{ClientWriteError, RaftError};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Most commands in one Raft entry.
pub const MAX_ENTRY_COMMANDS: usize = 4_096;
/// Entries proposed and not yet applied at once; calls arriving meanwhile share the next.
pub const MAX_ENTRIES_IN_FLIGHT: usize = 4;
/// Calls waiting for an entry; beyond it callers wait to enqueue (back-pressure).
const QUEUE: usize = 16_384;
/// Longest an entry holds its place in flight. openraft answers a proposal when its entry is
/// applied or truncated, but not when a snapshot installed over the log skips its index (a
/// leader that lost its term, took a snapshot from the next leader, and leads again): such
/// a proposal never returns, and `MAX_ENTRIES_IN_FLIGHT` of them stopped every write on the
/// node for good (a chaos run, 2026-12-04: 90 s of reads and no write). Past this bound the
/// callers hear the outcome is unknown; their retries under the same keys learn it.
pub const PROPOSAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

struct Pending {
    envelopes: Vec<Envelope>,
    reply: oneshot::Sender<Result<Vec<Outcome>, ApiError>>,
}

/// The handle client calls propose through.
#[derive(Clone)]
pub struct Proposer {
    queue: mpsc::Sender<Pending>,
}

impl Proposer {
    /// Starts the batching task for this node's Raft.
    pub fn start<C: LedgerTypes>(
        raft: openraft::Raft<C>,
        stamper: Arc<dyn Stamper>,
        planted: Option<PlantedBug>,
    ) -> (Proposer, tokio::task::JoinHandle<()>) {
        let (queue, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(raft, stamper, rx, planted));
        (Proposer { queue }, task)
    }

    /// Proposes commands (in one entry with whatever else is waiting) and returns their
    /// outcomes in order, once applied.
    pub async fn propose(&self, envelopes: Vec<Envelope>) -> Result<Vec<Outcome>, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { envelopes, reply })
            .await
            .map_err(|_| unavailable("the node is shutting down"))?;
        answer
            .await
            .map_err(|_| unavailable("the node is shutting down"))?
    }
}

fn unavailable(reason: impl std::fmt::Display) -> ApiError {
    ApiError::Unavailable {
        reason: reason.to_string(),
    }
}

/// Maps a Raft write error to what a client is told.
/// What `client_write` answers, for this node's types.
pub type WriteResult<C> =
    Result<openraft::raft::ClientWriteResponse<C>, RaftError<u64, ClientWriteError<u64, NodeAddr>>>;

/// Proposes an entry and waits for openraft's answer at most `PROPOSAL_TIMEOUT`. `None`: no
/// answer in time, the entry's outcome is unknown. Every proposal of the node goes through
/// here, its own too (outbox rounds, webhook acknowledgements, genesis): one that waited
/// forever stopped the SMS outbox and payment expiry on the node that made it.
pub async fn write_bounded<C: LedgerTypes>(
    raft: &openraft::Raft<C>,
    proposal: Proposal,
) -> Option<WriteResult<C>> {
    tokio::time::timeout(PROPOSAL_TIMEOUT, raft.client_write(proposal))
        .await
        .ok()
}

pub fn write_error(e: RaftError<u64, ClientWriteError<u64, NodeAddr>>) -> ApiError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ApiError::NotLeader {
            leader: f.leader_id.zip(f.leader_node).map(|(id, node)| NodeInfo {
                id,
                raft_addr: node.raft,
                client_addr: node.client,
            }),
        },
        other => unavailable(other),
    }
}

async fn run<C: LedgerTypes>(
    raft: openraft::Raft<C>,
    stamper: Arc<dyn Stamper>,
    mut rx: mpsc::Receiver<Pending>,
    planted: Option<PlantedBug>,
) {
    let slots = Arc::new(Semaphore::new(MAX_ENTRIES_IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let permit = slots.clone().acquire_owned().await.expect("never closed");
        let mut count = first.envelopes.len();
        let mut batch = vec![first];
        while count < MAX_ENTRY_COMMANDS {
            match rx.try_recv() {
                Ok(next) => {
                    count += next.envelopes.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        let now_ms = stamper.now_ms();
        tokio::spawn(async move {
            let sizes: Vec<usize> = batch.iter().map(|p| p.envelopes.len()).collect();
            let mut replies = Vec::with_capacity(batch.len());
            let mut envelopes = Vec::with_capacity(count);
            for pending in batch {
                envelopes.extend(pending.envelopes);
                replies.push(pending.reply);
            }
            if planted == Some(PlantedBug::ProposerMisroutesReplies)
                && sizes.len() >= 2
                && sizes[0] == sizes[1]
            {
                replies.swap(0, 1);
            }
            let proposal = Proposal {
                now_ms,
                body: ProposalBody::Commands(envelopes),
            };
            let result = write_bounded(&raft, proposal).await;
            drop(permit);
            let Some(result) = result else {
                tracing::warn!(
                    commands = count,
                    "an entry was not applied within {} s; its callers are told the outcome is unknown",
                    PROPOSAL_TIMEOUT.as_secs()
                );
                for reply in replies {
                    let _ = reply.send(Err(unavailable(format!(
                        "the entry was not applied within {} s: its outcome is unknown",
                        PROPOSAL_TIMEOUT.as_secs()
                    ))));
                }
                return;
            };
            match result {
                Ok(response) => match response.data {
                    Applied::Outcomes(outcomes) => {
                        let mut outcomes = outcomes.into_iter();
                        for (reply, size) in replies.into_iter().zip(sizes) {
                            let _ = reply.send(Ok(outcomes.by_ref().take(size).collect()));
                        }
                    }
                    _ => {
                        for reply in replies {
                            let _ = reply.send(Err(unavailable(
                                "the cluster has no ledger yet (not initialised)",
                            )));
                        }
                    }
                },
                Err(e) => {
                    let error = write_error(e);
                    for reply in replies {
                        let _ = reply.send(Err(error.clone()));
                    }
                }
            }
        });
    }
}
