//! Chat templates: the Jinja template a GGUF carries (`tokenizer.chat_template`), rendered with
//! minijinja plus the Python-style helpers Hugging Face templates rely on.

use minijinja::{Environment, Error as JinjaError, ErrorKind, context};
use serde::{Deserialize, Serialize};

use super::error::{LlmError, LlmResult};

/// ChatML, used when a model carries no template of its own.
const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// Gemma's turns (`<start_of_turn>user` ... `<end_of_turn>`, the assistant is `model`, a system
/// message opens the first user turn), for Gemma GGUFs that carry no template: the text-only
/// part of the template Google ships with Gemma 3.
pub const GEMMA: &str = "{{ bos_token }}{% if messages and messages[0]['role'] == 'system' %}{% set prefix = messages[0]['content'] + '\n\n' %}{% set turns = messages[1:] %}{% else %}{% set prefix = '' %}{% set turns = messages %}{% endif %}{% for message in turns %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role']) + '\n' + (prefix if loop.first else '') + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    /// The role stored as `as_str` wrote it; anything unknown reads as the user's.
    pub fn parse(name: &str) -> Role {
        match name {
            "system" => Role::System,
            "assistant" => Role::Assistant,
            _ => Role::User,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

pub struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
    /// Why the model's template cannot be used: rendering then fails with this message, while
    /// raw prompts still work.
    broken: Option<String>,
}

impl ChatTemplate {
    /// The model's template, or ChatML when `source` is `None`.
    pub fn new(source: Option<&str>, bos: &str, eos: &str) -> Self {
        let mut env = Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, JinjaError> {
                Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_function("strftime_now", |fmt: String| -> String {
            strftime_now(&fmt)
        });
        let broken = env
            .add_template_owned("chat", source.unwrap_or(CHATML).to_owned())
            .err()
            .map(|e| e.to_string());
        Self {
            env,
            bos: bos.to_owned(),
            eos: eos.to_owned(),
            broken,
        }
    }

    /// The prompt text for `messages`, ending with the assistant's turn opener.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> LlmResult<String> {
        if let Some(why) = &self.broken {
            return Err(LlmError::Template(format!(
                "the model's chat template is invalid: {why}"
            )));
        }
        let template = self
            .env
            .get_template("chat")
            .map_err(|e| LlmError::Template(e.to_string()))?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => self.bos,
                eos_token => self.eos,
            })
            .map_err(|e| LlmError::Template(e.to_string()))
    }
}

/// Today's date (UTC) in `fmt`, for templates that print "Today Date: ..."; supports %d %m %y
/// %Y %b %B and %%.
fn strftime_now(fmt: &str) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let month = MONTHS[(m - 1) as usize];
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('Y') => out.push_str(&y.to_string()),
            Some('y') => out.push_str(&format!("{:02}", y % 100)),
            Some('b') => out.push_str(&month[..3]),
            Some('B') => out.push_str(month),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_llama_style_templates_render() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_786), (2026, 11, 29));
        let source = "{{ bos_token }}{% if messages[0].role == 'system' %}{{ messages[0].content.strip() }}{% endif %}{{ strftime_now('%Y') | length }}{% if add_generation_prompt %}<go>{% endif %}";
        let t = ChatTemplate::new(Some(source), "<s>", "</s>");
        let text = t
            .render(&[Message::new(Role::System, "  hi  ")], true)
            .unwrap();
        assert_eq!(text, "<s>hi4<go>");
        let bad = ChatTemplate::new(
            Some("{{ raise_exception('roles must alternate') }}"),
            "",
            "",
        );
        assert!(
            bad.render(&[], true)
                .unwrap_err()
                .to_string()
                .contains("roles must alternate")
        );
    }

    #[test]
    fn gemma_turns_fold_the_system_message_into_the_first_user_turn() {
        let t = ChatTemplate::new(Some(GEMMA), "<bos>", "<eos>");
        let text = t
            .render(
                &[
                    Message::new(Role::System, "Answer briefly."),
                    Message::new(Role::User, " 안녕? "),
                    Message::new(Role::Assistant, "안녕하세요."),
                    Message::new(Role::User, "Why?"),
                ],
                true,
            )
            .unwrap();
        assert_eq!(
            text,
            "<bos><start_of_turn>user\nAnswer briefly.\n\n안녕?<end_of_turn>\n<start_of_turn>model\n안녕하세요.<end_of_turn>\n<start_of_turn>user\nWhy?<end_of_turn>\n<start_of_turn>model\n"
        );
        let alone = t.render(&[Message::new(Role::User, "hi")], false).unwrap();
        assert_eq!(alone, "<bos><start_of_turn>user\nhi<end_of_turn>\n");
    }
}
