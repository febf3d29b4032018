//! `ledgerctl sms`: the development SMS outbox the dev cluster's nodes write.

use crate::failure::Failure;
use crate::session::Session;
use crate::view::{out, View};
use clap::Subcommand;
use ledger_wire::dev_sms::{read_outbox, DevSms, DEV_OUTBOX_FILE};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// How often `sms tail --follow` reads the outboxes again.
const FOLLOW_POLL: Duration = Duration::from_millis(300);

#[derive(Subcommand)]
pub enum SmsCmd {
    /// Print the latest messages of the dev cluster's SMS outbox (oldest first).
    Tail {
        /// How many.
        #[arg(short = 'n', long, default_value_t = 10)]
        lines: usize,
        /// Keep printing new messages until interrupted.
        #[arg(long)]
        follow: bool,
    },
}

/// One message (JSON: one line per message, as the outbox holds it).
#[derive(Serialize)]
#[serde(transparent)]
pub struct Message(DevSms);

impl View for Message {
    fn text(&self) -> String {
        format!("#{} to {}: {}", self.0.id, self.0.to, self.0.text)
    }

    fn print(&self, json: bool) {
        if json {
            out(&serde_json::to_string(&self.0).unwrap_or_default());
        } else {
            out(&self.text());
        }
    }
}

/// Every SMS in the dev outboxes under `data_dir`, deduplicated by message id, oldest first.
pub fn outbox(data_dir: &Path) -> Vec<DevSms> {
    let mut messages: Vec<DevSms> = std::fs::read_dir(data_dir)
        .map(|entries| {
            entries
                .flatten()
                .flat_map(|e| read_outbox(&e.path().join(DEV_OUTBOX_FILE)).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    messages.sort_by_key(|m| m.id);
    messages.dedup_by_key(|m| m.id);
    messages
}

pub async fn run(session: &Session, cmd: SmsCmd, data_dir: &Path) -> Result<(), Failure> {
    let SmsCmd::Tail { lines, follow } = cmd;
    let mut shown = 0u64;
    loop {
        let messages = outbox(data_dir);
        let fresh: Vec<&DevSms> = if shown == 0 {
            messages.iter().rev().take(lines).rev().collect()
        } else {
            messages.iter().filter(|m| m.id > shown).collect()
        };
        for m in fresh {
            session.show(&Message(m.clone()));
            shown = shown.max(m.id);
        }
        if !follow {
            if messages.is_empty() {
                eprintln!(
                    "no messages in {}/node*/{DEV_OUTBOX_FILE}",
                    data_dir.display()
                );
            }
            return Ok(());
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}
