//! Variable expansion of one Dockerfile word over a lookup (ARG and ENV scope).
//!
//! Pure. Delegates to the front end's shell-word processor so expansion has one definition.

/// Expands `$VAR`, `${VAR}`, `${VAR:-default}` … in `w`, looking names up with `lookup`.
pub fn word(w: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    crate::dockerfile::shell::expand(w, lookup).map_err(|e| e.to_string())
}

/// [`word`] with the Dockerfile's escape character (`# escape=`): it drives quotes, `\$` and
/// every other escape of the word, not only line continuation.
pub fn word_with(
    escape: char,
    w: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    crate::dockerfile::shell::Lexer::new(escape)
        .expand(w, lookup)
        .map_err(|e| e.to_string())
}
