//! One-time passwords for e-Pay challenges: HOTP (RFC 4226) and OCRA (RFC 6287).
//!
//! Every function here is a pure function of its arguments (no clock, no randomness, no I/O),
//! so the deterministic ledger core can recompute a customer's response and compare it with
//! [`ct_eq`] on every replica and get the same answer.

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use std::fmt;

/// Size of the OCRA question field Q in bytes (RFC 6287 section 5.1).
const Q_BYTES: usize = 128;

/// Hash function of an OCRA/HOTP suite; it selects the HMAC and the PIN hash (P) alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtpHash {
    /// SHA-1, the HOTP default (RFC 4226).
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-512.
    Sha512,
}

impl OtpHash {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "SHA1" => Some(Self::Sha1),
            "SHA256" => Some(Self::Sha256),
            "SHA512" => Some(Self::Sha512),
            _ => None,
        }
    }

    fn output_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }
}

/// HMAC of `message` under `key` with the given hash; shared by HOTP and OCRA so both use
/// one audited code path.
pub fn hmac(hash: OtpHash, key: &[u8], message: &[u8]) -> Vec<u8> {
    match hash {
        OtpHash::Sha1 => mac_with::<Hmac<Sha1>>(key, message),
        OtpHash::Sha256 => mac_with::<Hmac<Sha256>>(key, message),
        OtpHash::Sha512 => mac_with::<Hmac<Sha512>>(key, message),
    }
}

fn mac_with<M: Mac + KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC is defined for keys of every length (RFC 2104 hashes long keys and zero-pads short
    // ones), so this constructor cannot fail whatever the key is.
    let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// RFC 4226 (section 5.3) dynamic truncation of an HMAC result, reduced modulo 10^digits;
/// turns a MAC into a short code a customer can type. With `digits >= 10` the 31-bit value is
/// returned whole. Bytes past the end of `mac` read as zero, which no HMAC output (at least
/// 20 bytes) ever needs, so the function is total.
pub fn truncate(mac: &[u8], digits: u32) -> u32 {
    let offset = usize::from(mac.last().copied().unwrap_or(0) & 0x0f);
    let byte = |i: usize| mac.get(offset + i).copied().unwrap_or(0);
    let bin = u32::from_be_bytes([byte(0) & 0x7f, byte(1), byte(2), byte(3)]);
    match 10u32.checked_pow(digits) {
        Some(modulus) => bin % modulus,
        None => bin,
    }
}

/// RFC 4226 HOTP value (HMAC-SHA1 over the 8-byte big-endian counter), the counter-based
/// code that hardware tokens and authenticator apps produce.
pub fn hotp(key: &[u8], counter: u64, digits: u32) -> u32 {
    truncate(&hmac(OtpHash::Sha1, key, &counter.to_be_bytes()), digits)
}

/// How the challenge question of a suite is written (the F of "QFxx").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QuestionFormat {
    Alphanumeric,
    Numeric,
    Hex,
}

/// A parsed OCRA suite such as "OCRA-1:HOTP-SHA256-6:C-QH64" (RFC 6287 section 6); parsing
/// once up front means a malformed suite is rejected when configured, not when a customer
/// answers a challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OcraSuite {
    text: String,
    hash: OtpHash,
    digits: u32,
    counter: bool,
    question: QuestionFormat,
    password: Option<OtpHash>,
    session_len: Option<usize>,
    timestamp: bool,
}

impl OcraSuite {
    /// Parses and validates a suite string; the exact text is kept because it is hashed into
    /// every OCRA message. Supported: hash SHA1/SHA256/SHA512, digits 0 or 4..=10, optional
    /// C, Q with format A/N/H and length 04..=64, optional PSHA1/PSHA256/PSHA512, optional
    /// Snnn (1..=999 bytes), optional T with step 1-59S, 1-59M or 1-48H (errata 3729).
    pub fn parse(s: &str) -> Result<OcraSuite, OcraError> {
        let bad = OcraError::UnsupportedSuite;
        let mut fields = s.split(':');
        let (Some(version), Some(crypto), Some(data), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(bad("expected three ':'-separated fields"));
        };
        if version != "OCRA-1" {
            return Err(bad("version"));
        }
        let (hash, digits) = crypto
            .strip_prefix("HOTP-")
            .and_then(|rest| rest.split_once('-'))
            .ok_or(bad("crypto function"))?;
        let hash = OtpHash::from_name(hash).ok_or(bad("hash"))?;
        let digits = number(digits, 1, 2)
            .filter(|d| *d == 0 || (4..=10).contains(d))
            .ok_or(bad("digits"))?;

        let mut items = data.split('-').peekable();
        let counter = items.next_if_eq(&"C").is_some();
        let q = items.next().and_then(|q| q.strip_prefix('Q'));
        let question = match q.and_then(|q| q.chars().next()) {
            Some('A') => QuestionFormat::Alphanumeric,
            Some('N') => QuestionFormat::Numeric,
            Some('H') => QuestionFormat::Hex,
            _ => return Err(bad("question")),
        };
        q.and_then(|q| q.get(1..))
            .and_then(|len| number(len, 2, 2))
            .filter(|len| (4..=64).contains(len))
            .ok_or(bad("question length"))?;
        let mut take = |tag: char| items.next_if(|i| i.starts_with(tag)).map(|i| &i[1..]);
        let password = match take('P') {
            None => None,
            Some(p) => Some(OtpHash::from_name(p).ok_or(bad("password hash"))?),
        };
        let session_len = match take('S') {
            None => None,
            Some(n) => Some(number(n, 3, 3).filter(|n| *n > 0).ok_or(bad("session"))?),
        };
        let timestamp = take('T').map(time_step_ok);
        if timestamp == Some(false) {
            return Err(bad("time step"));
        }
        if items.next().is_some() {
            return Err(bad("data input"));
        }
        Ok(OcraSuite {
            text: s.to_owned(),
            hash,
            digits,
            counter,
            question,
            password,
            session_len: session_len.map(|n| n as usize),
            timestamp: timestamp.is_some(),
        })
    }

    /// Number of decimal digits of the response (0 means "no truncation"), needed to format
    /// the code with [`format_code`].
    pub fn digits(&self) -> u32 {
        self.digits
    }
}

/// Parses `min..=max` ASCII decimal digits (no sign, no spaces).
fn number(s: &str, min: usize, max: usize) -> Option<u32> {
    let ok = (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| s.parse().ok()).flatten()
}

/// Checks a time step "G" such as "30S", "1M" or "24H" (RFC 6287 section 6.3, errata 3729).
fn time_step_ok(g: &str) -> bool {
    let (Some(n), Some(unit)) = (g.get(..g.len().saturating_sub(1)), g.chars().last()) else {
        return false;
    };
    let max = match unit {
        'S' | 'M' => 59,
        'H' => 48,
        _ => return false,
    };
    number(n, 1, 2).is_some_and(|n| (1..=max).contains(&n))
}

/// Inputs of one OCRA computation; fields the suite does not use must be `None`, so a
/// mismatch between configuration and caller is reported instead of silently ignored.
#[derive(Default)]
pub struct OcraInput<'a> {
    /// Counter C, sent as 8 bytes big-endian; required iff the suite has "C".
    pub counter: Option<u64>,
    /// Question Q as the RFC gives it: decimal digits for N, hex for H, text for A. In
    /// mutual mode this is the concatenation of both parties' challenges.
    pub question: &'a str,
    /// P: the PIN/password already hashed with the suite's P hash.
    pub password_hash: Option<&'a [u8]>,
    /// S: session information, exactly the suite's nnn bytes.
    pub session: Option<&'a [u8]>,
    /// T: number of time steps since the Unix epoch, sent as 8 bytes big-endian.
    pub timestamp_steps: Option<u64>,
}

/// RFC 6287 OCRA value: HMAC(key, suite || 0x00 || C || Q(128 bytes, padded) || P || S || T),
/// truncated like HOTP; this is the challenge-response code e-Pay checks. Returns a typed
/// error when the input does not match the suite, or for suites with 0 digits (their untruncated
/// HMAC does not fit a `u32`).
pub fn ocra(suite: &OcraSuite, key: &[u8], input: &OcraInput) -> Result<u32, OcraError> {
    use OcraError::*;
    if suite.digits == 0 {
        return Err(NoTruncation);
    }
    let counter = match (suite.counter, input.counter) {
        (true, None) => return Err(MissingCounter),
        (false, Some(_)) => return Err(UnexpectedCounter),
        (_, c) => c,
    };
    let question = encode_question(suite.question, input.question)?;
    let password = match (suite.password.map(OtpHash::output_len), input.password_hash) {
        (Some(_), None) => return Err(MissingPassword),
        (None, Some(_)) => return Err(UnexpectedPassword),
        (Some(want), Some(p)) if p.len() != want => return Err(BadPasswordLength(want, p.len())),
        (_, p) => p.unwrap_or_default(),
    };
    let session = match (suite.session_len, input.session) {
        (Some(_), None) => return Err(MissingSession),
        (None, Some(_)) => return Err(UnexpectedSession),
        (Some(want), Some(s)) if s.len() != want => return Err(BadSessionLength(want, s.len())),
        (_, s) => s.unwrap_or_default(),
    };
    let time = match (suite.timestamp, input.timestamp_steps) {
        (true, None) => return Err(MissingTimestamp),
        (false, Some(_)) => return Err(UnexpectedTimestamp),
        (_, t) => t,
    };
    let mut msg = suite.text.clone().into_bytes();
    msg.push(0);
    if let Some(c) = counter {
        msg.extend_from_slice(&c.to_be_bytes());
    }
    msg.extend_from_slice(&question);
    msg.extend_from_slice(password);
    msg.extend_from_slice(session);
    if let Some(t) = time {
        msg.extend_from_slice(&t.to_be_bytes());
    }
    Ok(truncate(&hmac(suite.hash, key, &msg), suite.digits))
}

/// Encodes Q (RFC 6287 section 5.1): N is converted to hex, H is taken as hex, A as bytes;
/// the result is right-padded with zeros to 128 bytes (an odd hex length gets a '0' nibble).
fn encode_question(format: QuestionFormat, q: &str) -> Result<[u8; Q_BYTES], OcraError> {
    if q.len() > 2 * Q_BYTES {
        return Err(OcraError::QuestionTooLong);
    }
    let valid = match format {
        QuestionFormat::Alphanumeric => q.bytes().all(|b| b.is_ascii_alphanumeric()),
        QuestionFormat::Numeric => q.bytes().all(|b| b.is_ascii_digit()),
        QuestionFormat::Hex => q.bytes().all(|b| b.is_ascii_hexdigit()),
    };
    if q.is_empty() || !valid {
        return Err(OcraError::BadQuestion);
    }
    let mut out = [0u8; Q_BYTES];
    let nibbles: Vec<u8> = match format {
        QuestionFormat::Alphanumeric => {
            let dst = out.get_mut(..q.len()).ok_or(OcraError::QuestionTooLong)?;
            dst.copy_from_slice(q.as_bytes());
            return Ok(out);
        }
        QuestionFormat::Numeric => decimal_to_hex(q),
        QuestionFormat::Hex => q
            .chars()
            .filter_map(|c| c.to_digit(16))
            .map(|d| d as u8)
            .collect(),
    };
    if nibbles.len() > 2 * Q_BYTES {
        return Err(OcraError::QuestionTooLong);
    }
    for (i, nibble) in nibbles.iter().enumerate() {
        out[i / 2] |= if i % 2 == 0 { nibble << 4 } else { *nibble };
    }
    Ok(out)
}

/// Converts a string of ASCII decimal digits to hex nibbles, most significant first, by
/// repeated division by 16 of the decimal digit vector; zero becomes a single 0 nibble.
fn decimal_to_hex(decimal: &str) -> Vec<u8> {
    let mut num: Vec<u8> = decimal
        .bytes()
        .map(|b| b - b'0')
        .skip_while(|d| *d == 0)
        .collect();
    let mut nibbles = Vec::new();
    while !num.is_empty() {
        let mut rem = 0u8;
        let mut quotient = Vec::with_capacity(num.len());
        for d in &num {
            let cur = rem * 10 + d; // < 160, fits a u8
            if cur >= 16 || !quotient.is_empty() {
                quotient.push(cur / 16);
            }
            rem = cur % 16;
        }
        nibbles.push(rem);
        num = quotient;
    }
    if nibbles.is_empty() {
        nibbles.push(0);
    }
    nibbles.reverse();
    nibbles
}

/// Typed errors of suite parsing and OCRA computation, so callers can tell configuration
/// mistakes from bad customer input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OcraError {
    /// The suite string is malformed or unsupported; names the offending part.
    UnsupportedSuite(&'static str),
    /// The suite asks for 0 digits (raw HMAC), which `ocra` cannot return as a `u32`.
    NoTruncation,
    /// The suite has C but no counter was given.
    MissingCounter,
    /// A counter was given but the suite has no C.
    UnexpectedCounter,
    /// The question is empty or has characters outside its format (A, N or H).
    BadQuestion,
    /// The question does not fit the 128-byte Q field.
    QuestionTooLong,
    /// The suite has P but no password hash was given.
    MissingPassword,
    /// A password hash was given but the suite has no P.
    UnexpectedPassword,
    /// The password hash has the wrong length: (digest length of the suite's P hash, given).
    BadPasswordLength(usize, usize),
    /// The suite has S but no session information was given.
    MissingSession,
    /// Session information was given but the suite has no S.
    UnexpectedSession,
    /// The session information has the wrong length: (the suite's nnn, given).
    BadSessionLength(usize, usize),
    /// The suite has T but no timestamp was given.
    MissingTimestamp,
    /// A timestamp was given but the suite has no T.
    UnexpectedTimestamp,
}

impl fmt::Display for OcraError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedSuite(part) => write!(f, "unsupported OCRA suite: bad {part}"),
            Self::NoTruncation => {
                f.write_str("OCRA suite with 0 digits cannot yield a numeric code")
            }
            Self::MissingCounter => f.write_str("OCRA suite requires a counter"),
            Self::UnexpectedCounter => f.write_str("OCRA suite takes no counter"),
            Self::BadQuestion => f.write_str("OCRA question is empty or not in the suite's format"),
            Self::QuestionTooLong => f.write_str("OCRA question does not fit 128 bytes"),
            Self::MissingPassword => f.write_str("OCRA suite requires a password hash"),
            Self::UnexpectedPassword => f.write_str("OCRA suite takes no password hash"),
            Self::BadPasswordLength(want, got) => {
                write!(f, "password hash is {got} bytes, not {want}")
            }
            Self::MissingSession => f.write_str("OCRA suite requires session information"),
            Self::UnexpectedSession => f.write_str("OCRA suite takes no session information"),
            Self::BadSessionLength(want, got) => {
                write!(f, "session info is {got} bytes, not {want}")
            }
            Self::MissingTimestamp => f.write_str("OCRA suite requires a timestamp"),
            Self::UnexpectedTimestamp => f.write_str("OCRA suite takes no timestamp"),
        }
    }
}

impl std::error::Error for OcraError {}

/// Formats a code with leading zeros to `digits` (8522129 with 8 digits -> "08522129"), since
/// codes are compared and displayed as fixed-width strings.
pub fn format_code(code: u32, digits: u32) -> String {
    format!("{code:0width$}", width = digits as usize)
}

/// Constant-time equality of two byte strings (their lengths are public), so comparing a
/// submitted code or MAC does not leak through timing how many leading bytes were right.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= std::hint::black_box(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha1::Digest;

    // Keys, PIN and timestamp of RFC 6287 Appendix C.
    const KEY20: &[u8] = b"12345678901234567890";
    const KEY32: &[u8] = b"12345678901234567890123456789012";
    const KEY64: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";
    const T: u64 = 0x132d0b6;

    fn pin_hash() -> Vec<u8> {
        Sha1::digest(b"1234").to_vec()
    }

    /// Checks one RFC table: row `i` has question `question(i)`, counter `i` if the suite has
    /// C, the SHA-1 hash of PIN "1234" if it has P and timestamp `T` if it has T.
    fn table(suite: &str, key: &[u8], codes: &str, question: impl Fn(usize) -> String) {
        let suite = OcraSuite::parse(suite).expect("RFC suite parses");
        let pin = pin_hash();
        for (i, want) in codes.split_whitespace().enumerate() {
            let q = question(i);
            let input = OcraInput {
                counter: suite.counter.then_some(i as u64),
                question: &q,
                password_hash: suite.password.map(|_| &pin[..]),
                session: None,
                timestamp_steps: suite.timestamp.then_some(T),
            };
            let got = ocra(&suite, key, &input).expect("RFC input matches suite");
            assert_eq!(
                format_code(got, suite.digits()),
                want,
                "{} row {i}",
                suite.text
            );
        }
    }

    fn q8(i: usize) -> String {
        i.to_string().repeat(8)
    }

    #[test]
    fn hotp_matches_rfc4226_appendix_d() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, want) in expected.into_iter().enumerate() {
            assert_eq!(hotp(KEY20, counter as u64, 6), want, "counter {counter}");
        }
    }

    #[test]
    fn rfc6287_pin_hash_is_sha1_of_1234() {
        let hex: String = pin_hash().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "7110eda4d09e062aa5e4a390b0a572ac0d2c0220");
    }

    #[test]
    fn ocra_sha1_6_qn08_matches_rfc6287_c1() {
        let codes = "237653 243178 653583 740991 608993 388898 816933 224598 750600 294470";
        table("OCRA-1:HOTP-SHA1-6:QN08", KEY20, codes, q8);
    }

    #[test]
    fn ocra_sha256_8_c_qn08_psha1_matches_rfc6287_c1() {
        let codes = "65347737 86775851 78192410 71565254 10104329 \
                     65983500 70069104 91771096 75011558 08522129";
        table("OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1", KEY32, codes, |_| {
            "12345678".into()
        });
    }

    #[test]
    fn ocra_sha256_8_qn08_psha1_matches_rfc6287_c1() {
        let codes = "83238735 01501458 17957585 86776967 86807031";
        table("OCRA-1:HOTP-SHA256-8:QN08-PSHA1", KEY32, codes, q8);
    }

    #[test]
    fn ocra_sha512_8_c_qn08_matches_rfc6287_c1() {
        let codes = "07016083 63947962 70123924 25341727 33203315 \
                     34205738 44343969 51946085 20403879 31409299";
        table("OCRA-1:HOTP-SHA512-8:C-QN08", KEY64, codes, q8);
    }

    #[test]
    fn ocra_sha512_8_qn08_t1m_matches_rfc6287_c1() {
        let codes = "95209754 55907591 22048402 24218844 36209546";
        table("OCRA-1:HOTP-SHA512-8:QN08-T1M", KEY64, codes, q8);
    }

    #[test]
    fn ocra_mutual_sha256_qa08_server_and_client_match_rfc6287_c2() {
        let suite = "OCRA-1:HOTP-SHA256-8:QA08";
        let server = "28247970 01984843 65387857 03351211 83412541";
        table(suite, KEY32, server, |i| format!("CLI2222{i}SRV1111{i}"));
        let client = "15510767 90175646 33777207 95285278 28934924";
        table(suite, KEY32, client, |i| format!("SRV1111{i}CLI2222{i}"));
    }

    #[test]
    fn ocra_mutual_sha512_qa08_server_and_psha1_client_match_rfc6287_c2() {
        let server = "79496648 76831980 12250499 90856481 12761449";
        let q = |i| format!("CLI2222{i}SRV1111{i}");
        table("OCRA-1:HOTP-SHA512-8:QA08", KEY64, server, q);
        let client = "18806276 70020315 01600026 18951020 32528969";
        let q = |i| format!("SRV1111{i}CLI2222{i}");
        table("OCRA-1:HOTP-SHA512-8:QA08-PSHA1", KEY64, client, q);
    }

    #[test]
    fn ocra_plain_signature_matches_rfc6287_c3() {
        let codes = "53095496 04110475 31331128 76028668 46554205";
        table("OCRA-1:HOTP-SHA256-8:QA08", KEY32, codes, |i| {
            format!("SIG1{i}000")
        });
        let codes = "77537423 31970405 10235557 95213541 65360607";
        table("OCRA-1:HOTP-SHA512-8:QA10-T1M", KEY64, codes, |i| {
            format!("SIG1{i}00000")
        });
    }

    #[test]
    fn numeric_and_hex_questions_are_right_padded() {
        let enc = |f, q| encode_question(f, q).expect("valid question");
        let q = enc(QuestionFormat::Numeric, "12345678"); // 0xBC614E
        assert_eq!(q[..3], [0xbc, 0x61, 0x4e]);
        assert!(q[3..].iter().all(|b| *b == 0));
        // 1111 = 0x457: an odd hex length gets a '0' nibble on the right.
        assert_eq!(enc(QuestionFormat::Numeric, "1111")[..3], [0x45, 0x70, 0]);
        assert_eq!(enc(QuestionFormat::Hex, "abc")[..3], [0xab, 0xc0, 0]);
        assert_eq!(
            enc(QuestionFormat::Alphanumeric, "Ab1")[..4],
            [b'A', b'b', b'1', 0]
        );
        // 10^64 - 1 in hex (computed independently with Python's int): 54 digits, 27 bytes.
        let hex = "184F03E93FF9F4DAA797ED6E38ED64BF6A1F00FFFFFFFFFFFFFFFF";
        let nibbles = enc(QuestionFormat::Hex, hex);
        let q = enc(QuestionFormat::Numeric, &"9".repeat(64));
        assert_eq!(q, nibbles);
        assert_eq!((q[0], q[26], q[27]), (0x18, 0xff, 0));
    }

    #[test]
    fn suite_parse_accepts_rfc_suites() {
        for s in [
            "OCRA-1:HOTP-SHA1-6:QN08",
            "OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1",
            "OCRA-1:HOTP-SHA512-8:QN08-T1M",
            "OCRA-1:HOTP-SHA256-6:C-QH64",
            "OCRA-1:HOTP-SHA512-8:QA10-T1M",
            "OCRA-1:HOTP-SHA1-4:QA04-PSHA512-S064-T30S",
            "OCRA-1:HOTP-SHA256-10:C-QN64-PSHA256-S512-T48H",
            "OCRA-1:HOTP-SHA1-0:QH40",
        ] {
            assert_eq!(OcraSuite::parse(s).map(|p| p.text), Ok(s.to_owned()));
        }
        let suite = OcraSuite::parse("OCRA-1:HOTP-SHA256-10:QN08");
        assert_eq!(suite.map(|s| s.digits()), Ok(10));
    }

    #[test]
    fn suite_parse_rejects_malformed_suites_with_typed_errors() {
        let three = "expected three ':'-separated fields";
        let cases = [
            ("OCRA-1:HOTP-SHA1-6", three),
            ("OCRA-1:HOTP-SHA1-6:QN08:X", three),
            ("OCRA-2:HOTP-SHA1-6:QN08", "version"),
            ("OCRA-1:TOTP-SHA1-6:QN08", "crypto function"),
            ("OCRA-1:HOTP-MD5-6:QN08", "hash"),
            ("OCRA-1:HOTP-SHA1-3:QN08", "digits"),
            ("OCRA-1:HOTP-SHA1-11:QN08", "digits"),
            ("OCRA-1:HOTP-SHA1-+6:QN08", "digits"),
            ("OCRA-1:HOTP-SHA1-6:C", "question"),
            ("OCRA-1:HOTP-SHA1-6:qn08", "question"),
            ("OCRA-1:HOTP-SHA1-6:QX08", "question"),
            ("OCRA-1:HOTP-SHA1-6:QN03", "question length"),
            ("OCRA-1:HOTP-SHA1-6:QN65", "question length"),
            ("OCRA-1:HOTP-SHA1-6:QN8", "question length"),
            ("OCRA-1:HOTP-SHA1-6:QN08-PMD5", "password hash"),
            ("OCRA-1:HOTP-SHA1-6:QN08-S64", "session"),
            ("OCRA-1:HOTP-SHA1-6:QN08-S000", "session"),
            ("OCRA-1:HOTP-SHA1-6:QN08-T60S", "time step"),
            ("OCRA-1:HOTP-SHA1-6:QN08-T0H", "time step"),
            ("OCRA-1:HOTP-SHA1-6:QN08-T49H", "time step"),
            ("OCRA-1:HOTP-SHA1-6:QN08-T1D", "time step"),
            ("OCRA-1:HOTP-SHA1-6:QN08-T1M-C", "data input"),
            ("OCRA-1:HOTP-SHA1-6:QN08-T1M-PSHA1", "data input"),
            ("OCRA-1:HOTP-SHA1-6:QN08-", "data input"),
        ];
        for (s, part) in cases {
            assert_eq!(
                OcraSuite::parse(s),
                Err(OcraError::UnsupportedSuite(part)),
                "{s}"
            );
        }
    }

    #[test]
    fn ocra_rejects_inputs_that_do_not_match_the_suite() {
        use OcraError::*;
        let pin = pin_hash();
        let full = OcraSuite::parse("OCRA-1:HOTP-SHA1-6:C-QN08-PSHA1-S004-T1M").expect("valid");
        let input = |c, q, p, s, t| OcraInput {
            counter: c,
            question: q,
            password_hash: p,
            session: s,
            timestamp_steps: t,
        };
        let (p, s) = (Some(&pin[..]), Some(&b"abcd"[..]));
        let run = |i: OcraInput| ocra(&full, KEY20, &i).map(|_| ());
        assert_eq!(run(input(Some(1), "12345678", p, s, Some(T))), Ok(()));
        assert_eq!(
            run(input(None, "12345678", p, s, Some(T))),
            Err(MissingCounter)
        );
        assert_eq!(run(input(Some(1), "", p, s, Some(T))), Err(BadQuestion));
        assert_eq!(run(input(Some(1), "12a4", p, s, Some(T))), Err(BadQuestion));
        let long = "1".repeat(257);
        assert_eq!(
            run(input(Some(1), &long, p, s, Some(T))),
            Err(QuestionTooLong)
        );
        assert_eq!(
            run(input(Some(1), "1234", None, s, Some(T))),
            Err(MissingPassword)
        );
        let short = Some(&b"1234"[..]);
        assert_eq!(
            run(input(Some(1), "1234", short, s, Some(T))),
            Err(BadPasswordLength(20, 4))
        );
        assert_eq!(
            run(input(Some(1), "1234", p, None, Some(T))),
            Err(MissingSession)
        );
        let five = Some(&b"abcde"[..]);
        assert_eq!(
            run(input(Some(1), "1234", p, five, Some(T))),
            Err(BadSessionLength(4, 5))
        );
        assert_eq!(
            run(input(Some(1), "1234", p, s, None)),
            Err(MissingTimestamp)
        );

        let bare = OcraSuite::parse("OCRA-1:HOTP-SHA1-6:QA08").expect("valid");
        let run = |i: OcraInput| ocra(&bare, KEY20, &i).map(|_| ());
        assert_eq!(
            run(input(Some(0), "ABCD", None, None, None)),
            Err(UnexpectedCounter)
        );
        assert_eq!(
            run(input(None, "ABCD", p, None, None)),
            Err(UnexpectedPassword)
        );
        assert_eq!(
            run(input(None, "ABCD", None, s, None)),
            Err(UnexpectedSession)
        );
        assert_eq!(
            run(input(None, "ABCD", None, None, Some(1))),
            Err(UnexpectedTimestamp)
        );
        assert_eq!(run(input(None, "AB-D", None, None, None)), Err(BadQuestion));
        let (max, over) = ("A".repeat(128), "A".repeat(129));
        assert_eq!(run(input(None, &max, None, None, None)), Ok(()));
        assert_eq!(
            run(input(None, &over, None, None, None)),
            Err(QuestionTooLong)
        );

        let hex = OcraSuite::parse("OCRA-1:HOTP-SHA1-6:QH08").expect("valid");
        assert_eq!(
            ocra(&hex, KEY20, &input(None, "12G4", None, None, None)),
            Err(BadQuestion)
        );
        let raw = OcraSuite::parse("OCRA-1:HOTP-SHA1-0:QA08").expect("valid");
        assert_eq!(
            ocra(&raw, KEY20, &input(None, "ABCD", None, None, None)),
            Err(NoTruncation)
        );
    }

    #[test]
    fn truncate_keeps_31_bits_for_ten_digits_and_never_panics() {
        let mac = [0xffu8; 20]; // offset 15 -> 0x7fffffff
        assert_eq!(truncate(&mac, 10), 0x7fff_ffff);
        assert_eq!(truncate(&mac, 6), 0x7fff_ffff % 1_000_000);
        assert_eq!((truncate(&[], 6), truncate(&[0x0f], 6)), (0, 0));
    }

    #[test]
    fn ct_eq_accepts_equal_strings() {
        assert!(ct_eq(b"08522129", b"08522129"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn ct_eq_rejects_difference_at_first_byte() {
        assert!(!ct_eq(b"18522129", b"08522129"));
    }

    #[test]
    fn ct_eq_rejects_difference_at_last_byte() {
        assert!(!ct_eq(b"08522128", b"08522129"));
    }

    #[test]
    fn ct_eq_rejects_different_lengths() {
        assert!(!ct_eq(b"0852212", b"08522129"));
        assert!(!ct_eq(b"", b"0"));
    }

    #[test]
    fn format_code_pads_with_zeros() {
        assert_eq!(format_code(8522129, 8), "08522129");
        assert_eq!(format_code(0, 6), "000000");
        assert_eq!(format_code(755224, 6), "755224");
        assert_eq!(format_code(2147483647, 10), "2147483647");
    }
}
