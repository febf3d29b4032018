//! Sample customers for demonstrations and load generators (`ledgerctl demo`, `ledger-bench`,
//! the examples, the tests): card numbers and phones derived from a number, so that a run
//! can make as many distinct customers as it needs and find them again.

/// A 16-digit, Luhn-valid card number derived from `n` (the same `n`, the same number).
pub fn card_number(n: u64) -> String {
    let body = format!("622202{:09}", n % 1_000_000_000);
    (0..10)
        .map(|check| format!("{body}{check}"))
        .find(|pan| ledger_core::validate::card_number(pan).is_ok())
        .expect("one check digit makes any body Luhn-valid")
}

/// An 11-digit mainland mobile number derived from `n`.
pub fn phone(n: u64) -> String {
    format!("138{:08}", n % 100_000_000)
}

/// A base for this run's sample customers: ten numbers of its own (`base` to `base + 9`),
/// from the wall clock in seconds, so that a run does not meet an earlier run's customers.
pub fn fresh_base() -> u64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    secs % 1_000_000 * 10
}

#[cfg(test)]
mod tests {
    #[test]
    fn sample_card_numbers_are_valid_and_distinct() {
        let a = super::card_number(1);
        assert!(ledger_core::validate::card_number(&a).is_ok());
        assert_ne!(a, super::card_number(2));
        assert_eq!(super::phone(7), "13800000007");
    }
}
