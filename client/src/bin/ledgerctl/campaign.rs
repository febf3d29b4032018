//! `ledgerctl campaign`: merchant campaigns as records (DOMAIN.md section 4). Every number
//! of `create` defaults to the article's year-end campaign; flags change one rule each.

use crate::failure::Failure;
use crate::session::Session;
use crate::view::{parse_yuan, yuan_u, Line, Table};
use clap::{Args, Subcommand, ValueEnum};
use ledger_core::command::Command;
use ledger_core::state::{Campaign, CampaignCounters};
use ledger_core::types::{CampaignId, CampaignRules, FeeTiers, MerchantId, RewardRule, VipTier};
use ledger_core::Reply;
use ledger_wire::api::Operation;
use serde::Serialize;

const DAY_MS: u64 = 86_400_000;

#[derive(Subcommand)]
pub enum CampaignCmd {
    /// Create a campaign (operator), running from now for `--days` (with `--key`: from when
    /// the key was first issued, so the retried command is the same command).
    Create(CreateArgs),
    /// Show a campaign's window and rules.
    Show { id: u64 },
    /// Show a merchant's counters in a campaign.
    Counters {
        #[arg(long)]
        campaign: u64,
        #[arg(long)]
        merchant: u64,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Gift {
    None,
    Platinum,
    Diamond,
}

/// A campaign's rules; every default is the article's.
#[derive(Args)]
pub struct CreateArgs {
    #[arg(long)]
    name: String,
    #[arg(long, default_value_t = 90)]
    days: u64,
    /// No reward for POS merchants.
    #[arg(long)]
    no_pos_reward: bool,
    /// Settlements a new POS merchant needs for its reward.
    #[arg(long, default_value_t = 10)]
    pos_min_count: u64,
    /// Yuan of bills a new POS merchant needs for its reward.
    #[arg(long, default_value = "2000")]
    pos_min_amount: String,
    /// The POS merchant's reward, yuan of phone credit.
    #[arg(long, default_value = "100")]
    pos_reward: String,
    /// No reward for 商易通 merchants.
    #[arg(long)]
    no_shangyitong_reward: bool,
    #[arg(long, default_value_t = 10)]
    shangyitong_min_count: u64,
    #[arg(long, default_value = "50000")]
    shangyitong_min_amount: String,
    #[arg(long, default_value = "100")]
    shangyitong_reward: String,
    /// No fee tiers for 商易通 transfers.
    #[arg(long)]
    no_fee_tiers: bool,
    /// Average daily balance (yuan) that earns 20% fees.
    #[arg(long, default_value = "30000")]
    discount_min_balance: String,
    /// Settlements per terminal in a month that earn 20% fees.
    #[arg(long, default_value_t = 20)]
    discount_min_per_terminal: u64,
    /// Average daily balance (yuan) that waives fees.
    #[arg(long, default_value = "50000")]
    waived_min_balance: String,
    /// Months a fee tier is held once earned.
    #[arg(long, default_value_t = 3)]
    hold_months: u32,
    /// The VIP tier whose holders get the commemorative gift on reaching it.
    #[arg(long, value_enum, default_value_t = Gift::Platinum)]
    vip_gift: Gift,
}

impl CreateArgs {
    fn rules(&self) -> Result<CampaignRules, Failure> {
        let reward = |off: bool, count: u64, amount: &str, reward: &str| {
            Ok::<_, Failure>(match off {
                true => None,
                false => Some(RewardRule {
                    min_count: count,
                    min_fen: parse_yuan(amount)?,
                    reward_fen: parse_yuan(reward)?,
                }),
            })
        };
        Ok(CampaignRules {
            pos_reward: reward(
                self.no_pos_reward,
                self.pos_min_count,
                &self.pos_min_amount,
                &self.pos_reward,
            )?,
            shangyitong_reward: reward(
                self.no_shangyitong_reward,
                self.shangyitong_min_count,
                &self.shangyitong_min_amount,
                &self.shangyitong_reward,
            )?,
            fee_tiers: match self.no_fee_tiers {
                true => None,
                false => Some(FeeTiers {
                    discount_min_avg_balance_fen: parse_yuan(&self.discount_min_balance)?,
                    discount_min_tx_per_terminal: self.discount_min_per_terminal,
                    waived_min_avg_balance_fen: parse_yuan(&self.waived_min_balance)?,
                    hold_months: self.hold_months,
                }),
            },
            vip_gift: match self.vip_gift {
                Gift::None => None,
                Gift::Platinum => Some(VipTier::Platinum),
                Gift::Diamond => Some(VipTier::Diamond),
            },
        })
    }
}

impl CampaignCmd {
    pub fn changes_ledger(&self) -> bool {
        matches!(self, CampaignCmd::Create(_))
    }
}

#[derive(Serialize)]
struct Created {
    id: u64,
    starts_ms: u64,
}

fn reward_text(rule: Option<RewardRule>) -> String {
    rule.map_or("none".into(), |r| {
        format!(
            "{} yuan after {} settlements and {} yuan",
            yuan_u(r.reward_fen),
            r.min_count,
            yuan_u(r.min_fen)
        )
    })
}

impl Table for Campaign {
    fn rows(&self) -> Vec<(&'static str, String)> {
        let tiers = self.rules.fee_tiers.map_or("none".into(), |t| {
            format!(
                "20% from {} yuan average balance or {} settlements per terminal, waived from {} yuan; held {} months",
                yuan_u(t.discount_min_avg_balance_fen),
                t.discount_min_tx_per_terminal,
                yuan_u(t.waived_min_avg_balance_fen),
                t.hold_months
            )
        });
        vec![
            ("name", self.name.clone()),
            ("starts (ms)", self.starts_ms.to_string()),
            ("ends (ms)", self.ends_ms.to_string()),
            ("POS reward", reward_text(self.rules.pos_reward)),
            ("商易通 reward", reward_text(self.rules.shangyitong_reward)),
            ("fee tiers", tiers),
            (
                "VIP gift",
                self.rules
                    .vip_gift
                    .map_or("none".into(), |t| format!("on reaching {t:?}")),
            ),
        ]
    }
}

impl Table for CampaignCounters {
    fn rows(&self) -> Vec<(&'static str, String)> {
        vec![
            ("settlements", self.tx_count.to_string()),
            ("amount", format!("{} yuan", yuan_u(self.amount_fen))),
            (
                "reward",
                self.reward_payment
                    .map_or("not yet".into(), |p| format!("granted by payment {p}")),
            ),
        ]
    }
}

pub async fn run(session: &Session, cmd: CampaignCmd) -> Result<(), Failure> {
    match cmd {
        CampaignCmd::Create(args) => {
            let rules = args.rules()?;
            let key = session.write_key();
            // The key's request id is the client's wall clock in µs at its start: a retry
            // under `--key` builds the same window.
            let issued_ms = key.request_id / 1_000;
            let command = Command::CreateCampaign {
                name: args.name,
                starts_ms: None,
                ends_ms: issued_ms.saturating_add(args.days.saturating_mul(DAY_MS)),
                rules,
            };
            session
                .write_shown_with_key(key, Operation::Command(command), |reply| match reply {
                    Reply::CampaignCreated {
                        campaign,
                        starts_ms,
                    } => {
                        let id = campaign.0;
                        Ok(Line::new(
                            Created { id, starts_ms },
                            format!("created campaign {id}, running from {starts_ms} ms"),
                        ))
                    }
                    other => Err(other),
                })
                .await
        }
        CampaignCmd::Show { id } => {
            session
                .show_record("campaign", id, || session.client().campaign(CampaignId(id)))
                .await
        }
        CampaignCmd::Counters { campaign, merchant } => {
            // A merchant with no settlement in the campaign yet has all-zero counters.
            let counters = session
                .read(|| {
                    session
                        .client()
                        .merchant_campaign(MerchantId(merchant), CampaignId(campaign))
                })
                .await?
                .unwrap_or_default();
            session.show(&Line::new(
                counters,
                format!(
                    "merchant {merchant} in campaign {campaign}: {} settlements, {} yuan",
                    counters.tx_count,
                    yuan_u(counters.amount_fen)
                ),
            ));
            Ok(())
        }
    }
}
