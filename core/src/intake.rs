//! The intake: where a customer's secrets become the hashed fields of a command.
//!
//! This runs on the node that receives a request, before the command is proposed: it checks
//! the raw input, then replaces card numbers with keyed hashes, card passwords with salted,
//! peppered slow hashes, and OTP codes with keyed proofs. Nothing secret ever reaches the
//! Raft log. It also derives the OTP codes that the SMS carries (RFC 6287 OCRA over the
//! transaction digest and the challenge nonce), so the code itself is never stored anywhere.
//!
//! These functions are pure (keys, salts and nonces are arguments), but they are not part of
//! applying a command: password hashing is deliberately slow.

use crate::command::{CampaignFlags, ChallengeSeed, Command, OtpProof, PasswordHash};
use crate::otp::{self, OcraInput, OcraSuite};
use crate::outcome::LedgerError;
use crate::state::Challenge;
use crate::types::{Digest32, MerchantId};
use crate::validate;
use hmac::Mac;
use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::Zeroize;

/// The OCRA suite of e-Pay codes: HMAC-SHA256, 6 digits, the challenge nonce as counter and
/// the 32-byte transaction digest as a 64-hex-digit question.
pub const OTP_SUITE: &str = "OCRA-1:HOTP-SHA256-6:C-QH64";
/// PBKDF2 rounds for card passwords in production. The pepper (a key the database never
/// holds) is what makes a six-digit password's hash unguessable offline; the rounds slow an
/// attacker who has both.
pub const PASSWORD_ITERATIONS: u32 = 100_000;

/// A secret typed by a customer (card number, card password, OTP code). Its `Debug` never
/// shows the value, it has no `Display`, and its memory is wiped when dropped.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The value: only for hashing it here, or for delivering it to its owner (the SMS that
    /// carries an OTP). Never for logging.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// The bank's keys, shared by every node of a cluster and held outside the ledger state.
#[derive(Clone)]
pub struct SecretKeys {
    /// Keys the PAN and look-up hashes.
    pub card_key: [u8; 32],
    /// Pepper of the card password hash.
    pub password_pepper: [u8; 32],
    /// Key of the OTP derivation and verifiers.
    pub otp_key: [u8; 32],
    /// Key from which each merchant's webhook signing secret is derived.
    pub webhook_key: [u8; 32],
    /// PBKDF2 rounds for new password hashes.
    pub password_iterations: u32,
}

impl fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKeys")
            .field("password_iterations", &self.password_iterations)
            .finish_non_exhaustive()
    }
}

impl SecretKeys {
    /// Derives all keys from one master secret (HMAC-SHA256 with a label per key).
    pub fn derive(master: &[u8], password_iterations: u32) -> Self {
        let sub = |label: &str| hmac256(master, &[label.as_bytes()]).0;
        SecretKeys {
            card_key: sub("ledger/card-key"),
            password_pepper: sub("ledger/password-pepper"),
            otp_key: sub("ledger/otp-key"),
            webhook_key: sub("ledger/webhook-key"),
            password_iterations,
        }
    }
}

fn hmac256(key: &[u8], parts: &[&[u8]]) -> Digest32 {
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::digest::KeyInit>::new_from_slice(key)
        .expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    Digest32(mac.finalize().into_bytes().into())
}

/// A merchant's webhook signing secret for one registration (`Webhook::secret_version`):
/// derived from the nodes' master key, so every leader signs alike and the secret never
/// enters the log or a snapshot. `whsec_` and 64 hex digits.
pub fn webhook_secret(keys: &SecretKeys, merchant: MerchantId, version: u32) -> Secret {
    let d = hmac256(
        &keys.webhook_key,
        &[
            b"webhook-secret",
            &merchant.0.to_be_bytes(),
            &version.to_be_bytes(),
        ],
    );
    let hex: String = d.0.iter().map(|b| format!("{b:02x}")).collect();
    Secret::new(format!("whsec_{hex}"))
}

/// The `X-Signature` of a webhook delivery: HMAC-SHA256 of the exact body bytes under the
/// secret's text, as 64 lower-case hex digits (what a merchant recomputes to check it).
pub fn webhook_signature(secret: &Secret, body: &[u8]) -> String {
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::digest::KeyInit>::new_from_slice(
        secret.expose().as_bytes(),
    )
    .expect("HMAC accepts keys of any length");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `signature` (64 hex digits, as in `X-Signature`) is the webhook signature of
/// `body` under `secret`; compared in constant time.
pub fn verify_webhook_signature(secret: &Secret, body: &[u8], signature: &str) -> bool {
    let bytes: Option<Vec<u8>> = (0..signature.len())
        .step_by(2)
        .map(|i| {
            signature
                .get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect();
    let Some(bytes) = bytes.filter(|b| b.len() == 32) else {
        return false;
    };
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::digest::KeyInit>::new_from_slice(
        secret.expose().as_bytes(),
    )
    .expect("HMAC accepts keys of any length");
    mac.update(body);
    mac.verify_slice(&bytes).is_ok()
}

/// Refuses with `error` a typed secret (last six card digits, password, OTP code) that is
/// not exactly six digits.
fn six_digits_or(typed: &Secret, error: LedgerError) -> Result<(), LedgerError> {
    if validate::six_digits(typed.expose()) {
        Ok(())
    } else {
        Err(error)
    }
}

/// Keyed hash of a card number (checked first: 16-19 digits, Luhn).
pub fn card_digest(keys: &SecretKeys, pan: &Secret) -> Result<Digest32, LedgerError> {
    validate::card_number(pan.expose())?;
    Ok(hmac256(&keys.card_key, &[b"pan", pan.expose().as_bytes()]))
}

/// Keyed hash of (reserved phone, last six digits of the card): how a merchant names a payer.
pub fn lookup_digest(
    keys: &SecretKeys,
    phone: &str,
    last_six: &Secret,
) -> Result<Digest32, LedgerError> {
    validate::mobile_phone(phone)?;
    six_digits_or(last_six, LedgerError::CardNumberLength)?;
    Ok(hmac256(
        &keys.card_key,
        &[b"lookup", phone.as_bytes(), last_six.expose().as_bytes()],
    ))
}

fn pbkdf2_password(
    keys: &SecretKeys,
    password: &Secret,
    salt: &[u8; 16],
    iterations: u32,
) -> Digest32 {
    let peppered = hmac256(&keys.password_pepper, &[password.expose().as_bytes()]);
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(&peppered.0, salt, iterations, &mut out);
    Digest32(out)
}

/// A new password hash with a fresh salt (the caller's randomness).
pub fn hash_password(
    keys: &SecretKeys,
    password: &Secret,
    salt: [u8; 16],
) -> Result<PasswordHash, LedgerError> {
    six_digits_or(password, LedgerError::InvalidCardPasswordFormat)?;
    Ok(PasswordHash {
        salt,
        iterations: keys.password_iterations,
        hash: pbkdf2_password(keys, password, &salt, keys.password_iterations),
    })
}

/// The proof of a typed password against a stored hash: the same slow hash with the stored
/// salt and rounds. The ledger compares it with the stored hash in constant time.
pub fn password_proof(
    keys: &SecretKeys,
    password: &Secret,
    stored: &PasswordHash,
) -> Result<Digest32, LedgerError> {
    six_digits_or(password, LedgerError::InvalidCardPasswordFormat)?;
    Ok(pbkdf2_password(
        keys,
        password,
        &stored.salt,
        stored.iterations,
    ))
}

/// What a customer types to open an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenAccountRequest {
    pub holder_name: String,
    pub card_number: Secret,
    pub card_password: Secret,
    pub phone: String,
    pub flags: CampaignFlags,
}

/// Turns an account opening into its command: card number hashed, last four kept for
/// display, password hashed with `salt`.
pub fn open_account(
    keys: &SecretKeys,
    request: &OpenAccountRequest,
    salt: [u8; 16],
) -> Result<Command, LedgerError> {
    let pan = &request.card_number;
    let pan_digest = card_digest(keys, pan)?;
    validate::mobile_phone(&request.phone)?;
    let digits = pan.expose().as_bytes();
    let last_six = Secret::new(pan.expose()[digits.len() - 6..].to_owned());
    let mut pan_last4 = [0u8; 4];
    pan_last4.copy_from_slice(&digits[digits.len() - 4..]);
    Ok(Command::OpenAccount {
        holder_name: request.holder_name.clone(),
        pan_digest,
        pan_last4,
        lookup_digest: lookup_digest(keys, &request.phone, &last_six)?,
        phone: request.phone.clone(),
        password: hash_password(keys, &request.card_password, salt)?,
        flags: request.flags,
    })
}

/// The 6-digit code of a challenge, for the SMS: OCRA over the transaction digest with the
/// nonce as counter. Recomputable by any node holding the key, stored by none.
pub fn otp_code(keys: &SecretKeys, nonce: u64, tx_digest: &Digest32) -> Secret {
    let suite = OcraSuite::parse(OTP_SUITE).expect("OTP_SUITE is a valid suite");
    let question: String = tx_digest.0.iter().map(|b| format!("{b:02X}")).collect();
    let code = otp::ocra(
        &suite,
        &keys.otp_key,
        &OcraInput {
            counter: Some(nonce),
            question: &question,
            ..OcraInput::default()
        },
    )
    .expect("inputs match OTP_SUITE");
    Secret::new(otp::format_code(code, suite.digits()))
}

fn otp_verifier(keys: &SecretKeys, nonce: u64, tx_digest: &Digest32, code: &Secret) -> Digest32 {
    hmac256(
        &keys.otp_key,
        &[
            b"otp-verifier",
            &nonce.to_be_bytes(),
            &tx_digest.0,
            code.expose().as_bytes(),
        ],
    )
}

/// The randomness of one request: an HMAC of its idempotency key under the bank's key.
/// Unpredictable without the key, and the same for every retry of the request, so a retried
/// request becomes the very same command (same salt, same OTP nonce) and is recognised.
pub fn request_entropy(keys: &SecretKeys, key: crate::types::RequestKey, label: &str) -> [u8; 32] {
    hmac256(
        &keys.otp_key,
        &[
            b"request-entropy",
            label.as_bytes(),
            &key.client_id.to_be_bytes(),
            &key.request_id.to_be_bytes(),
        ],
    )
    .0
}

/// The digest of a request as the intake received it (`request` is its encoding, secrets
/// included), keyed so that neither the log nor a snapshot that holds it reveals a secret
/// (a six-digit code could be found from an unkeyed hash by trying every code). A retry of
/// the request has the same digest; the same key with another card number or code does not.
pub fn request_digest(keys: &SecretKeys, request: &[u8]) -> Digest32 {
    hmac256(&keys.otp_key, &[b"request-digest", request])
}

/// A new challenge for a transaction: the seed for the command (nonce and verifier) and the
/// code for the SMS. `nonce` is the leader's randomness.
pub fn challenge_seed(
    keys: &SecretKeys,
    nonce: u64,
    tx_digest: &Digest32,
) -> (ChallengeSeed, Secret) {
    let code = otp_code(keys, nonce, tx_digest);
    let seed = ChallengeSeed {
        nonce,
        verifier: otp_verifier(keys, nonce, tx_digest, &code),
    };
    (seed, code)
}

/// The proof of a typed code against a challenge, for the confirming command.
pub fn otp_proof(
    keys: &SecretKeys,
    challenge: &Challenge,
    typed: &Secret,
) -> Result<OtpProof, LedgerError> {
    six_digits_or(typed, LedgerError::InvalidOtpFormat)?;
    Ok(OtpProof {
        nonce: challenge.nonce,
        proof: otp_verifier(keys, challenge.nonce, &challenge.tx_digest, typed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_signature_is_plain_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2: what a merchant's own HMAC library computes.
        assert_eq!(
            webhook_signature(&Secret::new("Jefe"), b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_webhook_signature_verifies_only_for_its_body_and_secret() {
        let secret = Secret::new("whsec_test");
        let body = br#"{"id":7}"#;
        let signature = webhook_signature(&secret, body);
        assert!(verify_webhook_signature(&secret, body, &signature));
        assert!(!verify_webhook_signature(
            &secret,
            br#"{"id":8}"#,
            &signature
        ));
        assert!(!verify_webhook_signature(
            &Secret::new("whsec_other"),
            body,
            &signature
        ));
        for bad in ["", "zz", &signature[..62], &format!("{signature}00")] {
            assert!(!verify_webhook_signature(&secret, body, bad), "{bad}");
        }
    }

    #[test]
    fn each_registration_of_each_merchant_has_its_own_secret() {
        let keys = SecretKeys::derive(b"master", 1);
        let other = SecretKeys::derive(b"another master", 1);
        let s = |k: &SecretKeys, m: u64, v: u32| {
            webhook_secret(k, MerchantId(m), v).expose().to_owned()
        };
        assert!(s(&keys, 1, 1).starts_with("whsec_") && s(&keys, 1, 1).len() == 70);
        assert_eq!(s(&keys, 1, 1), s(&keys, 1, 1));
        assert_ne!(s(&keys, 1, 1), s(&keys, 1, 2));
        assert_ne!(s(&keys, 1, 1), s(&keys, 2, 1));
        assert_ne!(s(&keys, 1, 1), s(&other, 1, 1));
        // The secret never shows in Debug output.
        assert!(!format!("{:?}", webhook_secret(&keys, MerchantId(1), 1)).contains("whsec_"));
    }
}
