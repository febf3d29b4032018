//! Input checks shared by the core (on commands) and the intake (on raw customer input).
//! Each returns the typed error a client sees; none allocates on the refusal path.

use crate::command::Command;
use crate::config::{
    MAX_ALIAS_CHARS, MAX_AMOUNT_FEN, MAX_EVENT_BATCH, MAX_EXPIRE_BATCH, MAX_NAME_BYTES,
    MAX_ORDER_ID_BYTES, MAX_PROMOTION_PARTNERS, MAX_RECEIPT_BYTES, MAX_SMS_ACK,
    MAX_WEBHOOK_URL_BYTES,
};
use crate::outcome::{LedgerError, TextField};

/// An amount a command may move: 1 fen to [`MAX_AMOUNT_FEN`].
pub fn amount(amount_fen: u64) -> Result<u64, LedgerError> {
    match amount_fen {
        0 => Err(LedgerError::ZeroAmount),
        a if a > MAX_AMOUNT_FEN => Err(LedgerError::AmountTooLarge {
            amount_fen: a,
            max_fen: MAX_AMOUNT_FEN,
        }),
        a => Ok(a),
    }
}

/// A list of at most `max` items.
pub fn items(len: usize, max: usize) -> Result<(), LedgerError> {
    if len > max {
        Err(LedgerError::TooManyItems { max })
    } else {
        Ok(())
    }
}

/// A non-empty text of at most `max_bytes` bytes, without control characters. The length is
/// checked first, so a 10 MB string is refused without being scanned.
pub fn text(field: TextField, value: &str, max_bytes: usize) -> Result<(), LedgerError> {
    if value.len() > max_bytes {
        return Err(LedgerError::TextTooLong {
            field,
            max: max_bytes,
        });
    }
    if value.trim().is_empty() {
        return Err(LedgerError::TextEmpty { field });
    }
    if value.chars().any(char::is_control) {
        return Err(LedgerError::TextHasControlChars { field });
    }
    Ok(())
}

/// An e-Pay alias: at most [`MAX_ALIAS_CHARS`] characters, otherwise as [`text`]. Over
/// four bytes a character cannot be, so a longer string is refused before it is scanned.
pub fn alias(value: &str) -> Result<(), LedgerError> {
    let field = TextField::Alias;
    let too_long = LedgerError::TextTooLong {
        field,
        max: MAX_ALIAS_CHARS,
    };
    if value.len() > MAX_ALIAS_CHARS * 4 {
        return Err(too_long);
    }
    text(field, value, MAX_ALIAS_CHARS * 4)?;
    if value.chars().count() > MAX_ALIAS_CHARS {
        return Err(too_long);
    }
    Ok(())
}

/// A mainland mobile number: 11 ASCII digits, starting with 1.
pub fn mobile_phone(phone: &str) -> Result<(), LedgerError> {
    let ok =
        phone.len() == 11 && phone.starts_with('1') && phone.bytes().all(|b| b.is_ascii_digit());
    ok.then_some(()).ok_or(LedgerError::InvalidMobilePhone)
}

/// A mainland landline: area code of 3 or 4 digits starting with 0, a dash, then 7 or 8
/// digits not starting with 0 or 1 (e.g. `0731-84567890`).
pub fn landline(phone: &str) -> Result<(), LedgerError> {
    let ok = phone.len() <= 13
        && phone.split_once('-').is_some_and(|(area, number)| {
            (3..=4).contains(&area.len())
                && area.starts_with('0')
                && area.bytes().all(|b| b.is_ascii_digit())
                && (7..=8).contains(&number.len())
                && number.bytes().all(|b| b.is_ascii_digit())
                && !number.starts_with(['0', '1'])
        });
    ok.then_some(()).ok_or(LedgerError::InvalidLandline)
}

/// A card number: 16 to 19 ASCII digits with a valid Luhn check digit.
pub fn card_number(pan: &str) -> Result<(), LedgerError> {
    if !(16..=19).contains(&pan.len()) || !pan.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LedgerError::CardNumberLength);
    }
    let sum: u32 = pan
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 {
                    d2 - 9
                } else {
                    d2
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
        .then_some(())
        .ok_or(LedgerError::CardNumberChecksum)
}

/// Exactly six ASCII digits (card passwords and OTP codes).
pub fn six_digits(value: &str) -> bool {
    value.len() == 6 && value.bytes().all(|b| b.is_ascii_digit())
}

/// Longest contact phone a merchant may give (a landline with its area code and dash).
pub const MAX_PHONE_BYTES: usize = 13;

/// The size bounds of every variable-size field of a command. The node's intake checks them
/// before it proposes a command, so a request with a 10 MB order id is refused with a typed
/// error and never reaches the Raft log; the core checks the full rules (these bounds
/// among them) again when it applies the command. The simulator checks every committed
/// command against this function.
pub fn field_limits(command: &Command) -> Result<(), LedgerError> {
    let bounded = |field, value: &str, max: usize| {
        if value.len() > max {
            Err(LedgerError::TextTooLong { field, max })
        } else {
            Ok(())
        }
    };
    match command {
        Command::OpenAccount {
            holder_name, phone, ..
        } => {
            bounded(TextField::HolderName, holder_name, MAX_NAME_BYTES)?;
            mobile_phone(phone)
        }
        Command::EpayBegin { phone, .. } => mobile_phone(phone),
        Command::EpayChooseAlias { alias, .. } if alias.len() > MAX_ALIAS_CHARS * 4 => {
            Err(LedgerError::TextTooLong {
                field: TextField::Alias,
                max: MAX_ALIAS_CHARS,
            })
        }
        Command::CardPayment { receipt, .. } => {
            bounded(TextField::Receipt, receipt, MAX_RECEIPT_BYTES)
        }
        Command::ExpirePayments { payments } if payments.len() > MAX_EXPIRE_BATCH => {
            Err(LedgerError::TooManyItems {
                max: MAX_EXPIRE_BATCH,
            })
        }
        Command::PaymentBegin { order_id, .. } => {
            bounded(TextField::OrderId, order_id, MAX_ORDER_ID_BYTES)
        }
        Command::RegisterMerchant {
            name,
            contact_phone,
            ..
        } => {
            bounded(TextField::MerchantName, name, MAX_NAME_BYTES)?;
            if contact_phone.len() > MAX_PHONE_BYTES {
                return Err(LedgerError::InvalidLandline);
            }
            Ok(())
        }
        Command::CreatePool { name, .. } => bounded(TextField::PoolName, name, MAX_NAME_BYTES),
        Command::CreatePromotion { name, partners, .. } => {
            bounded(TextField::PromotionName, name, MAX_NAME_BYTES)?;
            if partners.len() > MAX_PROMOTION_PARTNERS {
                return Err(LedgerError::InvalidPartners {
                    max: MAX_PROMOTION_PARTNERS,
                });
            }
            Ok(())
        }
        Command::CreatePrize { name, .. } => bounded(TextField::PrizeName, name, MAX_NAME_BYTES),
        Command::CreateCampaign { name, .. } => {
            bounded(TextField::CampaignName, name, MAX_NAME_BYTES)
        }
        Command::SetWebhook { url: Some(url), .. } => webhook_url(url),
        Command::AckEvents {
            delivered,
            abandoned,
            ..
        } if delivered.len() + abandoned.len() > MAX_EVENT_BATCH => {
            Err(LedgerError::TooManyItems {
                max: MAX_EVENT_BATCH,
            })
        }
        Command::AckSms { challenges } if challenges.len() > MAX_SMS_ACK => {
            Err(LedgerError::TooManyItems { max: MAX_SMS_ACK })
        }
        _ => Ok(()),
    }
}

/// A webhook URL: `http://` or `https://`, a host, printable ASCII without spaces, at most
/// `MAX_WEBHOOK_URL_BYTES`.
pub fn webhook_url(url: &str) -> Result<(), LedgerError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    let host_ok = host.is_some_and(|h| {
        let name = h.rsplit_once('@').map_or(h, |(_, n)| n);
        !name.is_empty() && !name.starts_with(':')
    });
    if url.len() > MAX_WEBHOOK_URL_BYTES || !host_ok || !url.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(LedgerError::InvalidWebhookUrl {
            max_bytes: MAX_WEBHOOK_URL_BYTES,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_url_is_http_or_https_with_a_host() {
        for good in [
            "https://shop.example/hooks/ledger",
            "http://127.0.0.1:8080/events",
            "https://[::1]:9443/x?y=1",
        ] {
            assert_eq!(webhook_url(good), Ok(()), "{good}");
        }
        let long = format!("https://a.example/{}", "x".repeat(MAX_WEBHOOK_URL_BYTES));
        for bad in [
            "ftp://shop.example/",
            "https:///path",
            "https://:443/",
            "shop.example/hooks",
            "https://shop.example/a b",
            "https://shop.example/\n",
            "",
            &long,
        ] {
            assert_eq!(
                webhook_url(bad),
                Err(LedgerError::InvalidWebhookUrl {
                    max_bytes: MAX_WEBHOOK_URL_BYTES
                }),
                "{bad}"
            );
        }
    }

    #[test]
    fn luhn_accepts_valid_and_refuses_a_wrong_check_digit() {
        assert_eq!(card_number("4111111111111111"), Ok(()));
        assert_eq!(
            card_number("4111111111111112"),
            Err(LedgerError::CardNumberChecksum)
        );
        assert_eq!(
            card_number("411111111111111"),
            Err(LedgerError::CardNumberLength)
        );
        assert_eq!(
            card_number("41111111111111x1"),
            Err(LedgerError::CardNumberLength)
        );
    }

    #[test]
    fn phone_formats_follow_the_mainland_plan() {
        assert_eq!(mobile_phone("13800138000"), Ok(()));
        assert_eq!(
            mobile_phone("23800138000"),
            Err(LedgerError::InvalidMobilePhone)
        );
        assert_eq!(
            mobile_phone("1380013800"),
            Err(LedgerError::InvalidMobilePhone)
        );
        assert_eq!(landline("0731-84567890"), Ok(()));
        assert_eq!(landline("010-6123456"), Ok(()));
        assert_eq!(landline("731-84567890"), Err(LedgerError::InvalidLandline));
        assert_eq!(landline("0731-04567890"), Err(LedgerError::InvalidLandline));
    }

    #[test]
    fn text_limits_refuse_empty_long_and_control_characters() {
        let f = TextField::HolderName;
        assert_eq!(text(f, "张三", 64), Ok(()));
        assert_eq!(text(f, " ", 64), Err(LedgerError::TextEmpty { field: f }));
        assert_eq!(
            text(f, "a\nb", 64),
            Err(LedgerError::TextHasControlChars { field: f })
        );
        let huge = "x".repeat(10 * 1024 * 1024);
        assert_eq!(
            text(f, &huge, 64),
            Err(LedgerError::TextTooLong { field: f, max: 64 })
        );
    }

    #[test]
    fn field_limits_refuse_an_over_long_order_id_before_it_is_proposed() {
        use crate::command::{ChallengeSeed, Command};
        use crate::types::{Digest32, MerchantId, Payee};
        let begin = |order_id: String| Command::PaymentBegin {
            lookup_digest: Digest32([0; 32]),
            payee: Payee::Merchant(MerchantId(1)),
            amount_fen: 100,
            order_id,
            challenge: ChallengeSeed {
                nonce: 1,
                verifier: Digest32([0; 32]),
            },
        };
        assert!(super::field_limits(&begin("o".repeat(super::MAX_ORDER_ID_BYTES))).is_ok());
        assert_eq!(
            super::field_limits(&begin("o".repeat(super::MAX_ORDER_ID_BYTES + 1))),
            Err(LedgerError::TextTooLong {
                field: TextField::OrderId,
                max: super::MAX_ORDER_ID_BYTES
            })
        );
    }
}
