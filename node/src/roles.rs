//! Who may do what (DOMAIN.md section 10): the one table of the client port's operations
//! and the roles that may call them. The service asks it before anything reaches the intake
//! or the log; a refusal is `ApiError::Forbidden` and changes nothing.
//!
//! | operation | operator | merchant | channel | auditor | node | gateway |
//! |---|---|---|---|---|---|---|
//! | open account, deposit, withdraw, transfer, status, flags, VIP tier | yes | | | | | |
//! | register merchant, create pool, close month | yes | | | | | |
//! | create promotion, create prize | yes | | | | | |
//! | redeem a prize | | | yes | | | |
//! | init cluster, add node, remove node | yes | | | | | |
//! | e-Pay enrolment (4 steps), e-Pay limits | | | yes | | | |
//! | payment begin / confirm / cancel to a merchant | | itself | | | | |
//! | card-present payment at a terminal | | itself | | | | |
//! | refund of a payment | | paid to itself | | | | |
//! | small transfer begin / confirm / cancel (payee an account) | | | yes | | | |
//! | merchant transfer out of its settlement account | | itself | | | | |
//! | set (or remove) its webhook | | itself | | | | |
//! | voucher claim | | | yes | | | |
//! | read account | yes | its settlement account | yes | yes | | |
//! | read credential, voucher, points | yes | | yes | yes | | |
//! | read merchant | yes | itself | | yes | | |
//! | read payment | yes | paid to itself | yes | yes | | |
//! | read pool, promotion, prize | yes | yes | yes | yes | | |
//! | read an account's statement | yes | its settlement account | yes | yes | | |
//! | read a merchant's reconciliation | yes | itself | | yes | | |
//! | read a merchant's payment events, webhook | yes | itself | | yes | | |
//! | read a webhook's signing secret | | itself | | | | |
//! | read state hash, account range, journal | yes | | | yes | | |
//! | status | yes | yes | yes | yes | | |
//!
//! The node role serves only the Raft port: its certificate is refused on the client port.

use ledger_core::command::Command;
use ledger_core::state::Payment;
use ledger_core::types::{AccountId, MerchantId, Payee, PaymentId};
use ledger_wire::api::{ApiError, Operation, Query};
use ledger_wire::principal::{Principal, Role};

/// What the table needs to know of the ledger to decide a merchant's ownership.
pub trait Owners {
    fn payment(&self, payment: PaymentId) -> Option<Payment>;
    /// The merchant an account settles, if any.
    fn settles(&self, account: AccountId) -> Option<MerchantId>;
}

impl<S: ledger_core::Store> Owners for ledger_core::Ledger<S> {
    fn payment(&self, payment: PaymentId) -> Option<Payment> {
        ledger_core::Ledger::payment(self, payment)
    }
    fn settles(&self, account: AccountId) -> Option<MerchantId> {
        self.account(account).and_then(|a| a.merchant)
    }
}

/// Who may call an operation: a role, or a merchant acting only for itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Allowed {
    Role(Role),
    /// Only this merchant.
    Merchant(MerchantId),
    /// Any of these roles, and a merchant when the merchant is this one.
    Reader {
        channel: bool,
        merchant: Option<MerchantId>,
    },
    /// Nobody may: the operation is not a client's to send (the intake says why).
    Nobody,
}

fn forbidden(principal: &Principal, operation: &str) -> ApiError {
    ApiError::Forbidden {
        principal: principal.to_string(),
        operation: operation.to_string(),
    }
}

fn check(principal: &Principal, allowed: Allowed, operation: &str) -> Result<(), ApiError> {
    let ok = match (allowed, principal) {
        (Allowed::Nobody, _) => true,
        (Allowed::Role(role), p) => p.role() == role,
        (Allowed::Merchant(m), Principal::Merchant { merchant }) => *merchant == m,
        (Allowed::Merchant(_), _) => false,
        (Allowed::Reader { .. }, Principal::Operator { .. } | Principal::Auditor { .. }) => true,
        (Allowed::Reader { channel, .. }, Principal::Channel { .. }) => channel,
        (Allowed::Reader { merchant, .. }, Principal::Merchant { merchant: m }) => {
            merchant == Some(*m)
        }
        (Allowed::Reader { .. }, Principal::Node { .. } | Principal::Gateway { .. }) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(forbidden(principal, operation))
    }
}

/// The operation's name in a `Forbidden` error and in logs (never its secrets).
pub fn operation_name(operation: &Operation) -> &'static str {
    match operation {
        Operation::OpenAccount(_) => "open an account",
        Operation::EpayBegin { .. } => "begin an e-Pay enrolment",
        Operation::EpayChooseAlias { .. } => "choose an e-Pay alias",
        Operation::EpayConfirm { .. } => "confirm an e-Pay enrolment",
        Operation::EpayActivate { .. } => "activate an e-Pay credential",
        Operation::PaymentBegin { .. } => "begin a payment",
        Operation::PaymentConfirm { .. } => "confirm a payment",
        Operation::CardPayment { .. } => "take a card payment at a terminal",
        Operation::Command(c) => command_name(c),
    }
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Deposit { .. } => "deposit",
        Command::Withdraw { .. } => "withdraw",
        Command::Transfer { .. } => "transfer",
        Command::SetAccountStatus { .. } => "set an account's status",
        Command::SetCampaignFlags { .. } => "set campaign flags",
        Command::SetVipTier { .. } => "set a VIP tier",
        Command::SetEpayLimits { .. } => "set e-Pay limits",
        Command::RegisterMerchant { .. } => "register a merchant",
        Command::MerchantTransfer { .. } => "transfer out of a merchant's account",
        Command::CloseMonth { .. } => "close a month",
        Command::CreatePool { .. } => "create a voucher pool",
        Command::ClaimVoucher { .. } => "claim a voucher",
        Command::CancelPayment { .. } => "cancel a payment",
        Command::CreatePromotion { .. } => "create a promotion",
        Command::CreatePrize { .. } => "create a prize",
        Command::CreateCampaign { .. } => "create a campaign",
        Command::RedeemPrize { .. } => "redeem a prize",
        Command::RefundPayment { .. } => "refund a payment",
        Command::SetWebhook { .. } => "set a merchant's webhook",
        Command::OpenAccount { .. }
        | Command::EpayBegin { .. }
        | Command::EpayChooseAlias { .. }
        | Command::EpayConfirm { .. }
        | Command::EpayActivate { .. }
        | Command::PaymentBegin { .. }
        | Command::PaymentConfirm { .. }
        | Command::CardPayment { .. }
        | Command::AckSms { .. }
        | Command::AckEvents { .. }
        | Command::ExpirePayments { .. }
        | Command::Compact => "send a node's command",
    }
}

/// Who may pay to this payee: the merchant itself, or the channel for a small transfer
/// between customers.
fn payer_side(payee: Payee) -> Allowed {
    match payee {
        Payee::Merchant(m) => Allowed::Merchant(m),
        Payee::Account(_) => Allowed::Role(Role::Channel),
    }
}

/// Who may act on an existing payment (confirm, cancel, refund): its payee's side. An
/// unknown payment: the ledger's own answer (no such payment) is the same for every caller
/// that may act on payments at all.
fn payment_side(owners: &impl Owners, payment: PaymentId) -> Allowed {
    match owners.payment(payment) {
        Some(p) => payer_side(p.payee),
        None => Allowed::Reader {
            channel: true,
            merchant: None,
        },
    }
}

fn allowed_operation(operation: &Operation, owners: &impl Owners) -> Allowed {
    match operation {
        Operation::OpenAccount(_) => Allowed::Role(Role::Operator),
        Operation::EpayBegin { .. }
        | Operation::EpayChooseAlias { .. }
        | Operation::EpayConfirm { .. }
        | Operation::EpayActivate { .. } => Allowed::Role(Role::Channel),
        Operation::PaymentBegin { payee, .. } => payer_side(*payee),
        Operation::PaymentConfirm { payment, .. } => payment_side(owners, *payment),
        Operation::CardPayment { merchant, .. } => Allowed::Merchant(*merchant),
        Operation::Command(command) => match command {
            Command::CancelPayment { payment } | Command::RefundPayment { payment, .. } => {
                payment_side(owners, *payment)
            }
            Command::SetEpayLimits { .. }
            | Command::ClaimVoucher { .. }
            | Command::RedeemPrize { .. } => Allowed::Role(Role::Channel),
            Command::MerchantTransfer { merchant, .. } | Command::SetWebhook { merchant, .. } => {
                Allowed::Merchant(*merchant)
            }
            Command::OpenAccount { .. }
            | Command::EpayBegin { .. }
            | Command::EpayChooseAlias { .. }
            | Command::EpayConfirm { .. }
            | Command::EpayActivate { .. }
            | Command::PaymentBegin { .. }
            | Command::PaymentConfirm { .. }
            | Command::CardPayment { .. }
            | Command::AckSms { .. }
            | Command::AckEvents { .. }
            | Command::ExpirePayments { .. }
            | Command::Compact => Allowed::Nobody,
            Command::Deposit { .. }
            | Command::Withdraw { .. }
            | Command::Transfer { .. }
            | Command::SetAccountStatus { .. }
            | Command::SetCampaignFlags { .. }
            | Command::SetVipTier { .. }
            | Command::RegisterMerchant { .. }
            | Command::CloseMonth { .. }
            | Command::CreatePool { .. }
            | Command::CreatePromotion { .. }
            | Command::CreatePrize { .. }
            | Command::CreateCampaign { .. } => Allowed::Role(Role::Operator),
        },
    }
}

/// May `principal` send `operation`? An unknown payment in a confirmation is left to the
/// ledger to refuse; an auditor may never write.
pub fn authorize_operation(
    principal: &Principal,
    operation: &Operation,
    owners: &impl Owners,
) -> Result<(), ApiError> {
    let allowed = allowed_operation(operation, owners);
    let allowed = match allowed {
        // A confirmation of an unknown payment: merchants and the channel may ask.
        Allowed::Reader { .. } if principal.role() == Role::Merchant => return Ok(()),
        Allowed::Reader { .. } => Allowed::Role(Role::Channel),
        other => other,
    };
    check(principal, allowed, operation_name(operation))
}

/// The query's name in a `Forbidden` error.
pub fn query_name(query: &Query) -> &'static str {
    match query {
        Query::Account(_) => "read an account",
        Query::Credential(_) => "read an e-Pay credential",
        Query::Merchant(_) => "read a merchant",
        Query::Pool(_) => "read a voucher pool",
        Query::Voucher(..) => "read a voucher",
        Query::Payment(_) => "read a payment",
        Query::Points(_) => "read an account's points",
        Query::Promotion(_) => "read a promotion",
        Query::Prize(_) => "read a prize",
        Query::Campaign(_) => "read a campaign",
        Query::MerchantCampaign(..) => "read a merchant's campaign counters",
        Query::StateHash => "read the state hash",
        Query::AccountRange { .. } => "read a range of accounts",
        Query::Statement(_) => "read an account's statement",
        Query::Reconciliation { .. } => "read a merchant's reconciliation",
        Query::Journal { .. } => "read the journal",
        Query::Events { .. } => "read a merchant's payment events",
        Query::Webhook(_) => "read a merchant's webhook",
        Query::WebhookSecret(_) => "read a webhook's signing secret",
    }
}

/// May `principal` read `query`? Decided on the state the read will see.
pub fn authorize_query(
    principal: &Principal,
    query: &Query,
    owners: &impl Owners,
) -> Result<(), ApiError> {
    let everyone = Allowed::Reader {
        channel: true,
        merchant: match principal {
            Principal::Merchant { merchant } => Some(*merchant),
            _ => None,
        },
    };
    let allowed = match query {
        Query::Pool(_) | Query::Promotion(_) | Query::Prize(_) | Query::Campaign(_) => everyone,
        Query::Account(a) => Allowed::Reader {
            channel: true,
            merchant: owners.settles(*a),
        },
        Query::Credential(_) | Query::Voucher(..) | Query::Points(_) => Allowed::Reader {
            channel: true,
            merchant: None,
        },
        Query::Merchant(m) | Query::MerchantCampaign(m, _) => Allowed::Reader {
            channel: false,
            merchant: Some(*m),
        },
        Query::Payment(p) => Allowed::Reader {
            channel: true,
            merchant: owners.payment(*p).and_then(|p| match p.payee {
                Payee::Merchant(m) => Some(m),
                Payee::Account(_) => None,
            }),
        },
        Query::Statement(s) => Allowed::Reader {
            channel: true,
            merchant: owners.settles(s.account),
        },
        Query::WebhookSecret(m) => Allowed::Merchant(*m),
        Query::Events { merchant, .. } | Query::Webhook(merchant) => Allowed::Reader {
            channel: false,
            merchant: Some(*merchant),
        },
        Query::Reconciliation { merchant, .. } => Allowed::Reader {
            channel: false,
            merchant: Some(*merchant),
        },
        Query::StateHash | Query::AccountRange { .. } | Query::Journal { .. } => Allowed::Reader {
            channel: false,
            merchant: None,
        },
    };
    check(principal, allowed, query_name(query))
}

/// Cluster administration (init, add and remove nodes): the operator only.
pub fn authorize_admin(principal: &Principal, operation: &str) -> Result<(), ApiError> {
    check(principal, Allowed::Role(Role::Operator), operation)
}

/// Whether `caller` may act for `target` (`submit_as`, `query_as`): only a gateway, and only
/// for a merchant, channel or auditor. The operator's work (money in and out, merchants,
/// cluster administration) never goes through a gateway, nor does a node's or another
/// gateway's.
pub fn authorize_delegation(caller: &Principal, target: &Principal) -> Result<(), ApiError> {
    let ok = caller.role() == Role::Gateway
        && matches!(
            target.role(),
            Role::Merchant | Role::Channel | Role::Auditor
        );
    if ok {
        Ok(())
    } else {
        Err(forbidden(caller, &format!("act for {target}")))
    }
}

/// Status: every principal of the client port.
pub fn authorize_status(principal: &Principal) -> bool {
    principal.role() != Role::Node
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::state::{PaymentMethod, PaymentState};
    use ledger_core::types::ChallengeId;
    use std::collections::BTreeMap;

    #[derive(Default)]
    struct Fixture {
        payments: BTreeMap<PaymentId, Payment>,
        settles: BTreeMap<AccountId, MerchantId>,
    }

    impl Owners for Fixture {
        fn payment(&self, payment: PaymentId) -> Option<Payment> {
            self.payments.get(&payment).cloned()
        }
        fn settles(&self, account: AccountId) -> Option<MerchantId> {
            self.settles.get(&account).copied()
        }
    }

    fn fixture() -> Fixture {
        let mut f = Fixture::default();
        f.payments.insert(
            PaymentId(1),
            Payment {
                payer: AccountId(10),
                payee: Payee::Merchant(MerchantId(7)),
                amount_fen: 100,
                order_id: "o".into(),
                method: PaymentMethod::Epay {
                    challenge: ChallengeId(1),
                },
                state: PaymentState::Pending,
                created_ms: 0,
                refunds: Default::default(),
                points_earned: 0,
            },
        );
        f.settles.insert(AccountId(20), MerchantId(7));
        f
    }

    fn p(role: Role, name: &str) -> Principal {
        Principal::new(role, name).unwrap()
    }

    #[test]
    fn a_merchant_acts_only_for_itself() {
        let f = fixture();
        let confirm = Operation::PaymentConfirm {
            payment: PaymentId(1),
            code: ledger_core::intake::Secret::new("123456"),
        };
        assert!(authorize_operation(&p(Role::Merchant, "7"), &confirm, &f).is_ok());
        let other = authorize_operation(&p(Role::Merchant, "8"), &confirm, &f);
        assert_eq!(
            other,
            Err(ApiError::Forbidden {
                principal: "merchant:8".into(),
                operation: "confirm a payment".into()
            })
        );
        assert!(
            authorize_query(&p(Role::Merchant, "7"), &Query::Payment(PaymentId(1)), &f).is_ok()
        );
        assert!(
            authorize_query(&p(Role::Merchant, "8"), &Query::Payment(PaymentId(1)), &f).is_err()
        );
        assert!(
            authorize_query(&p(Role::Merchant, "7"), &Query::Account(AccountId(20)), &f).is_ok()
        );
        assert!(
            authorize_query(&p(Role::Merchant, "7"), &Query::Account(AccountId(10)), &f).is_err()
        );
    }

    #[test]
    fn only_the_operator_moves_money_in_and_out() {
        let f = fixture();
        let deposit = Operation::Command(Command::Deposit {
            account: AccountId(10),
            amount_fen: 1,
        });
        for role in Role::ALL {
            let name = if matches!(role, Role::Merchant | Role::Node) {
                "7"
            } else {
                "x"
            };
            let result = authorize_operation(&p(role, name), &deposit, &f);
            assert_eq!(result.is_ok(), role == Role::Operator, "{role}");
        }
    }

    #[test]
    fn the_auditor_reads_everything_and_writes_nothing() {
        let f = fixture();
        let auditor = p(Role::Auditor, "audit");
        for q in [
            Query::Account(AccountId(10)),
            Query::Payment(PaymentId(1)),
            Query::StateHash,
            Query::Merchant(MerchantId(7)),
        ] {
            assert!(authorize_query(&auditor, &q, &f).is_ok());
        }
        let claim = Operation::Command(Command::ClaimVoucher {
            pool: ledger_core::types::PoolId(1),
            account: AccountId(10),
        });
        assert!(authorize_operation(&auditor, &claim, &f).is_err());
        assert!(authorize_admin(&auditor, "remove a node").is_err());
    }

    #[test]
    fn a_gateway_acts_for_merchants_channels_and_auditors_only_and_never_for_itself() {
        let f = fixture();
        let gateway = p(Role::Gateway, "http");
        for role in Role::ALL {
            let name = if matches!(role, Role::Merchant | Role::Node) {
                "7"
            } else {
                "x"
            };
            let target = p(role, name);
            let may = matches!(role, Role::Merchant | Role::Channel | Role::Auditor);
            assert_eq!(
                authorize_delegation(&gateway, &target).is_ok(),
                may,
                "gateway for {role}"
            );
            // Nobody else may act for anyone.
            if role != Role::Gateway {
                assert!(authorize_delegation(&target, &p(Role::Merchant, "7")).is_err());
            }
        }
        // Called as itself, the gateway may do nothing but ask for status.
        let confirm = Operation::PaymentConfirm {
            payment: PaymentId(1),
            code: ledger_core::intake::Secret::new("123456"),
        };
        assert!(authorize_operation(&gateway, &confirm, &f).is_err());
        let claim = Operation::Command(Command::ClaimVoucher {
            pool: ledger_core::types::PoolId(1),
            account: AccountId(10),
        });
        assert!(authorize_operation(&gateway, &claim, &f).is_err());
        assert!(authorize_query(&gateway, &Query::Payment(PaymentId(1)), &f).is_err());
        assert!(authorize_query(&gateway, &Query::StateHash, &f).is_err());
        assert!(authorize_admin(&gateway, "add a node").is_err());
        assert!(authorize_status(&gateway));
    }
}
