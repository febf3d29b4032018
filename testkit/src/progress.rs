//! A progress bar for long runs (a seed sweep, a chaos run) when standard error is a
//! terminal; plain lines otherwise, so CI logs and pipes read as before. Standard output is
//! never touched: scripts compare it.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress over `len` steps.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar of `len` steps named `what` (`seeds`, `s`), drawn on standard error only when it
    /// is a terminal.
    pub fn new(len: u64, what: &str) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        let template = format!("{{elapsed_precise}} [{{wide_bar}}] {{pos}}/{{len}} {what} {{msg}}");
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style.progress_chars("=> "));
        }
        Progress { bar }
    }

    /// A line that must always be seen (a seed's verdict, a violation): printed above the
    /// bar, or plainly when there is no bar.
    pub fn line(&self, text: impl AsRef<str>) {
        if self.bar.is_hidden() {
            eprintln!("{}", text.as_ref());
        } else {
            self.bar.suspend(|| eprintln!("{}", text.as_ref()));
        }
    }

    /// Runs `f` (which prints to standard error) with the bar out of the way.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }

    /// One more step done.
    pub fn step(&self) {
        self.bar.inc(1);
    }

    /// Moves to step `pos`.
    pub fn set(&self, pos: u64) {
        self.bar.set_position(pos);
    }

    /// A short note after the bar (failures so far).
    pub fn note(&self, message: String) {
        self.bar.set_message(message);
    }

    /// Removes the bar (the last lines stay).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
