//! A single-replica driver of the core: plays the roles of the leader (timestamps, nonces),
//! the intake (hashing secrets) and the customer (reading codes off the "SMS"), so tests,
//! benchmarks and the simulator's sequential model can run whole domain flows in a few lines.
//!
//! It is not used to apply commands on a node; the node has its own intake wiring.

use ledger_core::command::{CampaignFlags, Command, Context, Envelope, SessionOwner};
use ledger_core::config::{LedgerConfig, ARTICLE_CAMPAIGN_ENDS_MS, ARTICLE_CAMPAIGN_STARTS_MS};
use ledger_core::intake::{self, OpenAccountRequest, Secret, SecretKeys};
use ledger_core::ledger::Ledger;
use ledger_core::outcome::{LedgerError, Outcome, Reply};
use ledger_core::state::MemStore;
use ledger_core::types::{
    AccountId, CampaignId, CampaignRules, ChallengeId, MerchantId, Payee, PaymentId, RequestKey,
};

/// A test card: its account and the secrets its holder knows.
#[derive(Clone, Debug)]
pub struct Card {
    pub account: AccountId,
    pub pan: String,
    pub phone: String,
    pub password: String,
}

impl Card {
    /// The last six digits of the card, which the payer gives the merchant.
    pub fn last_six(&self) -> Secret {
        Secret::new(&self.pan[self.pan.len() - 6..])
    }
}

pub use ledger_client::sample::{card_number as test_pan, phone as test_phone};

/// splitmix64: a tiny, well-mixed deterministic sequence for nonces and salts.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The driver: one ledger, one client, a clock it advances by hand.
pub struct Driver {
    pub ledger: Ledger<MemStore>,
    pub keys: SecretKeys,
    pub now_ms: u64,
    pub index: u64,
    pub client_id: u64,
    /// Every (context, envelope) applied, when recording (`start_journal`): replay it on a
    /// second replica.
    pub journal: Option<Vec<(Context, Envelope)>>,
    /// What the constructor applied (the campaign), which a journal starts with.
    prelude: Vec<(Context, Envelope)>,
    /// What the driver's client acknowledges on every request (default 0: nothing).
    pub acked_below: u64,
    /// Whose session the driver's requests open (default: a client's).
    pub owner: SessionOwner,
    next_request: u64,
    rng: u64,
}

impl Driver {
    /// A ledger under `config` running the article's campaign (`Driver::CAMPAIGN`, created by
    /// the first command at its start), its clock one day into it. Password hashing uses a
    /// single PBKDF2 round: tests are about rules, not about slowness.
    pub fn new(config: LedgerConfig) -> Self {
        Driver::with_campaign(config, ARTICLE_CAMPAIGN_ENDS_MS, CampaignRules::article())
    }

    /// Like `new`, with a campaign of these rules from the article campaign's start to
    /// `ends_ms` (`Driver::CAMPAIGN`).
    pub fn with_campaign(config: LedgerConfig, ends_ms: u64, rules: CampaignRules) -> Self {
        let mut d = Driver::without_campaign(config);
        d.journal = Some(Vec::new());
        let reply = d.submit(Command::CreateCampaign {
            name: "心计划".into(),
            starts_ms: None,
            ends_ms,
            rules,
        });
        assert!(
            matches!(reply, Ok(Reply::CampaignCreated { campaign, .. }) if campaign == Driver::CAMPAIGN),
            "the article's campaign: {reply:?}"
        );
        d.prelude = d.journal.take().expect("recording");
        d.advance(86_400_000);
        d
    }

    /// Records every command from now on, after what the constructor applied: the journal
    /// replayed on a fresh genesis gives this ledger.
    pub fn start_journal(&mut self) {
        self.journal = Some(self.prelude.clone());
    }

    /// The article's campaign that `Driver::new` creates.
    pub const CAMPAIGN: CampaignId = CampaignId(1);

    /// A merchant's counters in the article's campaign (zero before its first settlement).
    pub fn counters(&self, merchant: MerchantId) -> ledger_core::state::CampaignCounters {
        self.ledger
            .merchant_campaign(merchant, Driver::CAMPAIGN)
            .unwrap_or_default()
    }

    /// A ledger under `config` with no campaign, its clock at the article campaign's start.
    pub fn without_campaign(config: LedgerConfig) -> Self {
        let now_ms = ARTICLE_CAMPAIGN_STARTS_MS;
        Driver {
            ledger: Ledger::genesis(MemStore::new(), config),
            keys: SecretKeys::derive(b"driver master key", 1),
            now_ms,
            index: 0,
            client_id: 7,
            journal: None,
            prelude: Vec::new(),
            acked_below: 0,
            owner: SessionOwner::Client,
            next_request: 1,
            rng: 42,
        }
    }

    /// The next fresh idempotency key.
    pub fn fresh_key(&mut self) -> RequestKey {
        let key = RequestKey {
            client_id: self.client_id,
            request_id: self.next_request,
        };
        self.next_request += 1;
        key
    }

    /// Applies a command under an explicit key, stamped with the driver's clock.
    pub fn submit_with_key(&mut self, key: RequestKey, command: Command) -> Outcome {
        self.index += 1;
        let ctx = Context {
            index: self.index,
            now_ms: self.now_ms,
        };
        let envelope = Envelope::new(key, self.acked_below, command).owned_by(self.owner);
        let outcome = self.ledger.apply(&ctx, &envelope);
        if let Some(journal) = &mut self.journal {
            journal.push((ctx, envelope));
        }
        outcome
    }

    /// Applies a command under a fresh key.
    pub fn submit(&mut self, command: Command) -> Outcome {
        let key = self.fresh_key();
        self.submit_with_key(key, command)
    }

    pub fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
    }

    /// The leader's randomness.
    pub fn nonce(&mut self) -> u64 {
        splitmix64(&mut self.rng)
    }

    /// Opens an account for card `n` and returns it with its secrets.
    pub fn open_card(&mut self, n: u64) -> Result<Card, LedgerError> {
        let card = Card {
            account: AccountId(0),
            pan: test_pan(n),
            phone: test_phone(n),
            password: format!("{:06}", (n * 7919) % 1_000_000),
        };
        let request = OpenAccountRequest {
            holder_name: format!("holder {n}"),
            card_number: Secret::new(&card.pan),
            card_password: Secret::new(&card.password),
            phone: card.phone.clone(),
            flags: CampaignFlags::default(),
        };
        let salt = self.nonce().to_be_bytes();
        let mut salt16 = [0u8; 16];
        salt16[..8].copy_from_slice(&salt);
        let command = intake::open_account(&self.keys, &request, salt16)?;
        match self.submit(command)? {
            Reply::AccountOpened { account } => Ok(Card { account, ..card }),
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// Opens card `n` and deposits `balance_fen` (if non-zero).
    pub fn funded_card(&mut self, n: u64, balance_fen: u64) -> Card {
        let card = self.open_card(n).expect("open card");
        if balance_fen > 0 {
            self.submit(Command::Deposit {
                account: card.account,
                amount_fen: balance_fen,
            })
            .expect("deposit");
        }
        card
    }

    /// The code the SMS for a challenge carries.
    pub fn code_for(&self, challenge: ChallengeId) -> Secret {
        let c = self.ledger.challenge(challenge).expect("challenge exists");
        intake::otp_code(&self.keys, c.nonce, &c.tx_digest)
    }

    /// Runs the four enrolment steps with the right password and code.
    pub fn enrol(&mut self, card: &Card, alias: &str) -> Outcome {
        let pan_digest = intake::card_digest(&self.keys, &Secret::new(&card.pan))?;
        self.submit(Command::EpayBegin {
            pan_digest,
            phone: card.phone.clone(),
        })?;
        let stored = self.ledger.holder(card.account).expect("holder").password;
        let password_proof =
            intake::password_proof(&self.keys, &Secret::new(&card.password), &stored)?;
        self.submit(Command::EpayChooseAlias {
            account: card.account,
            password_proof,
            alias: alias.to_owned(),
        })?;
        let challenge = self.issue_enrolment_code(card)?;
        let code = self.code_for(challenge);
        self.activate(card, &code)
    }

    /// Enrolment step 3: returns the challenge whose code was "sent".
    pub fn issue_enrolment_code(&mut self, card: &Card) -> Result<ChallengeId, LedgerError> {
        let enrolment = self.ledger.enrolment(card.account);
        let alias = enrolment.map(|e| e.alias).unwrap_or_default();
        let digest = ledger_core::command::TxElements::Enrolment {
            account: card.account,
            alias: &alias,
        }
        .digest();
        let nonce = self.nonce();
        let (seed, _code) = intake::challenge_seed(&self.keys, nonce, &digest);
        match self.submit(Command::EpayConfirm {
            account: card.account,
            challenge: seed,
        })? {
            Reply::ChallengeIssued { challenge, .. } => Ok(challenge),
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// Enrolment step 4 with a typed code.
    pub fn activate(&mut self, card: &Card, code: &Secret) -> Outcome {
        let challenge = self
            .ledger
            .enrolment(card.account)
            .and_then(|e| e.challenge)
            .ok_or(LedgerError::NotEnrolling {
                account: card.account,
            })?;
        let c = self.ledger.challenge(challenge).expect("challenge");
        let otp = intake::otp_proof(&self.keys, &c, code)?;
        self.submit(Command::EpayActivate {
            account: card.account,
            otp,
        })
    }

    /// The command for payment step 1, as the leader would build it.
    pub fn begin_payment_command(
        &mut self,
        card: &Card,
        payee: Payee,
        amount_fen: u64,
        order_id: &str,
    ) -> Result<Command, LedgerError> {
        let lookup_digest = intake::lookup_digest(&self.keys, &card.phone, &card.last_six())?;
        let digest = ledger_core::command::TxElements::Payment {
            lookup_digest: &lookup_digest,
            payee,
            amount_fen,
            order_id,
        }
        .digest();
        let nonce = self.nonce();
        let (challenge, _code) = intake::challenge_seed(&self.keys, nonce, &digest);
        Ok(Command::PaymentBegin {
            lookup_digest,
            payee,
            amount_fen,
            order_id: order_id.to_owned(),
            challenge,
        })
    }

    /// Payment step 1: returns the pending payment and its challenge.
    pub fn begin_payment(
        &mut self,
        card: &Card,
        payee: Payee,
        amount_fen: u64,
        order_id: &str,
    ) -> Result<(PaymentId, ChallengeId), LedgerError> {
        let command = self.begin_payment_command(card, payee, amount_fen, order_id)?;
        match self.submit(command)? {
            Reply::PaymentPending {
                payment, challenge, ..
            } => Ok((payment, challenge)),
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// The command for payment step 2 with a typed code.
    pub fn confirm_command(
        &self,
        payment: PaymentId,
        code: &Secret,
    ) -> Result<Command, LedgerError> {
        let p = self
            .ledger
            .payment(payment)
            .ok_or(LedgerError::UnknownPayment { payment })?;
        let challenge = p
            .challenge()
            .ok_or(LedgerError::PaymentNotPending { payment })?;
        let c = self.ledger.challenge(challenge).expect("challenge");
        Ok(Command::PaymentConfirm {
            payment,
            otp: intake::otp_proof(&self.keys, &c, code)?,
        })
    }

    /// Payment step 2 with a typed code.
    pub fn confirm(&mut self, payment: PaymentId, code: &Secret) -> Outcome {
        let command = self.confirm_command(payment, code)?;
        self.submit(command)
    }

    /// The command a terminal's swipe becomes at the intake: card number and PIN hashed (the
    /// PIN under the card's stored salt).
    pub fn swipe_command(
        &self,
        card: &Card,
        pin: &str,
        merchant: MerchantId,
        terminal: u32,
        amount_fen: u64,
        receipt: &str,
    ) -> Result<Command, LedgerError> {
        let pan_digest = intake::card_digest(&self.keys, &Secret::new(&card.pan))?;
        let account = self
            .ledger
            .account_by_card(pan_digest)
            .ok_or(LedgerError::UnknownCard)?;
        let stored = self.ledger.holder(account).expect("holder").password;
        let password_proof = intake::password_proof(&self.keys, &Secret::new(pin), &stored)?;
        Ok(Command::CardPayment {
            merchant,
            terminal,
            pan_digest,
            password_proof,
            amount_fen,
            receipt: receipt.to_owned(),
        })
    }

    /// A swipe at terminal 1 with the card's right PIN.
    pub fn swipe(
        &mut self,
        card: &Card,
        merchant: MerchantId,
        amount_fen: u64,
        receipt: &str,
    ) -> Outcome {
        let command = self.swipe_command(card, &card.password, merchant, 1, amount_fen, receipt)?;
        self.submit(command)
    }

    /// Both payment steps with the right code.
    pub fn pay(&mut self, card: &Card, payee: Payee, amount_fen: u64, order_id: &str) -> Outcome {
        let (payment, challenge) = self.begin_payment(card, payee, amount_fen, order_id)?;
        let code = self.code_for(challenge);
        self.confirm(payment, &code)
    }
}
