//! `ledgerctl points`: joint promotions with partner merchants, the points e-Pay payments
//! earn there, and prizes redeemed with them (DOMAIN.md section 8).

use crate::failure::Failure;
use crate::session::Session;
use crate::view::{Line, Table};
use clap::Subcommand;
use ledger_core::command::Command;
use ledger_core::state::{Prize, Promotion};
use ledger_core::types::{AccountId, MerchantId, PrizeId, PromotionId};
use ledger_core::Reply;
use ledger_wire::api::Operation;
use serde::Serialize;

const DAY_MS: u64 = 86_400_000;

#[derive(Subcommand)]
pub enum PointsCmd {
    /// Create a promotion (operator), open from now for `--days` (with `--key`: from when
    /// the key was first issued, so the retried command is the same command).
    CreatePromotion {
        #[arg(long)]
        name: String,
        /// A partner merchant; give it once per partner.
        #[arg(long = "partner", required = true)]
        partners: Vec<u64>,
        /// Points per whole yuan of an e-Pay bill settled at a partner.
        #[arg(long, default_value_t = 1)]
        rate: u32,
        #[arg(long, default_value_t = 30)]
        days: u64,
    },
    /// Create a prize (operator): its price in points and its stock.
    CreatePrize {
        #[arg(long)]
        name: String,
        #[arg(long)]
        price: u64,
        #[arg(long)]
        stock: u64,
    },
    /// Redeem a prize for an account's points (channel).
    Redeem {
        #[arg(long)]
        prize: u64,
        #[arg(long)]
        account: u64,
    },
    /// An account's points.
    Show { account: u64 },
    /// Show a promotion.
    Promotion { id: u64 },
    /// Show a prize and its stock.
    Prize { id: u64 },
}

impl PointsCmd {
    pub fn changes_ledger(&self) -> bool {
        matches!(
            self,
            PointsCmd::CreatePromotion { .. }
                | PointsCmd::CreatePrize { .. }
                | PointsCmd::Redeem { .. }
        )
    }
}

#[derive(Serialize)]
struct Created {
    id: u64,
}

#[derive(Serialize)]
struct Redeemed {
    points_left: u64,
    stock_left: u64,
}

#[derive(Serialize)]
struct Points {
    account: u64,
    points: u64,
}

impl Table for Promotion {
    fn rows(&self) -> Vec<(&'static str, String)> {
        let partners: Vec<String> = self.partners.iter().map(|m| m.to_string()).collect();
        vec![
            ("name", self.name.clone()),
            ("partners", partners.join(", ")),
            ("points per yuan", self.points_per_yuan.to_string()),
            ("valid from (ms)", self.valid_from_ms.to_string()),
            ("valid until (ms)", self.valid_until_ms.to_string()),
        ]
    }
}

impl Table for Prize {
    fn rows(&self) -> Vec<(&'static str, String)> {
        vec![
            ("name", self.name.clone()),
            ("price", format!("{} points", self.price_points)),
            (
                "left",
                format!("{} of {}", self.stock - self.redeemed, self.stock),
            ),
        ]
    }
}

pub async fn run(session: &Session, cmd: PointsCmd) -> Result<(), Failure> {
    match cmd {
        PointsCmd::CreatePromotion {
            name,
            partners,
            rate,
            days,
        } => {
            let key = session.write_key();
            // The key's request id is the client's wall clock in µs at its start: a retry
            // under `--key` builds the same window.
            let issued_ms = key.request_id / 1_000;
            let command = Command::CreatePromotion {
                name,
                partners: partners.into_iter().map(MerchantId).collect(),
                valid_from_ms: issued_ms,
                valid_until_ms: issued_ms.saturating_add(days.saturating_mul(DAY_MS)),
                points_per_yuan: rate,
            };
            session
                .write_shown_with_key(key, Operation::Command(command), |reply| match reply {
                    Reply::PromotionCreated { promotion } => {
                        let id = promotion.0;
                        Ok(Line::new(Created { id }, format!("created promotion {id}")))
                    }
                    other => Err(other),
                })
                .await
        }
        PointsCmd::CreatePrize { name, price, stock } => {
            let command = Command::CreatePrize {
                name,
                price_points: price,
                stock,
            };
            session
                .write_shown(Operation::Command(command), |reply| match reply {
                    Reply::PrizeCreated { prize } => {
                        let id = prize.0;
                        Ok(Line::new(Created { id }, format!("created prize {id}")))
                    }
                    other => Err(other),
                })
                .await
        }
        PointsCmd::Redeem { prize, account } => {
            let command = Command::RedeemPrize {
                prize: PrizeId(prize),
                account: AccountId(account),
            };
            session
                .write_shown(Operation::Command(command), |reply| match reply {
                    Reply::PrizeRedeemed {
                        points_left,
                        stock_left,
                        ..
                    } => {
                        let text = format!(
                            "prize {prize} redeemed; {points_left} points left, {stock_left} in stock"
                        );
                        Ok(Line::new(
                            Redeemed {
                                points_left,
                                stock_left,
                            },
                            text,
                        ))
                    }
                    other => Err(other),
                })
                .await
        }
        PointsCmd::Show { account } => {
            let points = session
                .read(|| session.client().points(AccountId(account)))
                .await?;
            let text = format!("account {account} holds {points} points");
            session.show(&Line::new(Points { account, points }, text));
            Ok(())
        }
        PointsCmd::Promotion { id } => {
            session
                .show_record("promotion", id, || {
                    session.client().promotion(PromotionId(id))
                })
                .await
        }
        PointsCmd::Prize { id } => {
            session
                .show_record("prize", id, || session.client().prize(PrizeId(id)))
                .await
        }
    }
}
