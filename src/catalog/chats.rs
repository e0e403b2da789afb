//! Chat history: conversations and their messages.

use super::{Catalog, now};
use crate::answer::{Answer, LlmCacheUse, Source};
use crate::error::Result;
use crate::llm::{Message, Role};

#[derive(Debug, Clone, serde::Serialize)]
pub struct ChatSummary {
    pub id: i64,
    pub title: String,
    pub messages: i64,
}

impl Catalog {
    pub async fn create_chat(&self, title: &str) -> Result<i64> {
        let id =
            sqlx::query_scalar("INSERT INTO chats (title, created_at) VALUES (?, ?) RETURNING id")
                .bind(title)
                .bind(now())
                .fetch_one(&self.pool)
                .await?;
        Ok(id)
    }

    pub async fn chats(&self) -> Result<Vec<ChatSummary>> {
        let rows: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT c.id, c.title, (SELECT COUNT(*) FROM messages m WHERE m.chat_id = c.id)
             FROM chats c ORDER BY c.id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, title, messages)| ChatSummary {
                id,
                title,
                messages,
            })
            .collect())
    }

    /// Append a message; `sources` is the JSON of the passages an answer cited from.
    pub async fn add_message(&self, chat: i64, message: &Message, sources: &str) -> Result<i64> {
        let id = sqlx::query_scalar(
            "INSERT INTO messages (chat_id, role, content, sources, created_at)
             VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(chat)
        .bind(message.role.as_str())
        .bind(&message.content)
        .bind(sources)
        .bind(now())
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    /// The messages of a chat, oldest first (what the model sees as history).
    pub async fn messages(&self, chat: i64) -> Result<Vec<Message>> {
        Ok(self
            .stored_messages(chat)
            .await?
            .into_iter()
            .map(|m| m.message)
            .collect())
    }
}

/// A stored message with its id and, for answers, the passages it was given and how it was
/// made.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub id: i64,
    pub message: Message,
    pub sources: Vec<Source>,
    pub meta: Option<AnswerMeta>,
}

/// What is shown under an answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AnswerMeta {
    pub model: String,
    pub tokens_per_s: f64,
    pub first_token_s: f64,
    pub answer_tokens: usize,
    /// Given from the LLM cache (so it has no decoding speed).
    #[serde(default)]
    pub from_cache: bool,
}

impl AnswerMeta {
    pub fn of(answer: &Answer) -> AnswerMeta {
        AnswerMeta {
            model: answer.model.clone(),
            tokens_per_s: answer.timings.decode_tokens_per_s,
            first_token_s: answer.timings.first_token_s,
            answer_tokens: answer.timings.answer_tokens,
            from_cache: matches!(answer.llm_cache, LlmCacheUse::Hit { .. }),
        }
    }
}

impl Catalog {
    /// The messages of a chat with their ids and cited sources, oldest first. Sources that no
    /// longer parse (written by another version) are shown as none rather than failing the chat.
    pub async fn stored_messages(&self, chat: i64) -> Result<Vec<StoredMessage>> {
        let rows: Vec<(i64, String, String, String, String)> = sqlx::query_as(
            "SELECT id, role, content, sources, meta FROM messages WHERE chat_id = ? ORDER BY id",
        )
        .bind(chat)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, role, content, sources, meta)| StoredMessage {
                id,
                message: Message::new(Role::parse(&role), content),
                sources: serde_json::from_str(&sources).unwrap_or_default(),
                meta: serde_json::from_str(&meta).ok(),
            })
            .collect())
    }

    pub async fn rename_chat(&self, chat: i64, title: &str) -> Result<()> {
        sqlx::query("UPDATE chats SET title = ? WHERE id = ?")
            .bind(title)
            .bind(chat)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes a chat and its messages.
    pub async fn delete_chat(&self, chat: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM messages WHERE chat_id = ?")
            .bind(chat)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM chats WHERE id = ?")
            .bind(chat)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes the messages of `chat` from `message` on (to regenerate an answer).
    pub async fn truncate_chat(&self, chat: i64, message: i64) -> Result<()> {
        sqlx::query("DELETE FROM messages WHERE chat_id = ? AND id >= ?")
            .bind(chat)
            .bind(message)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores a question and its answer; the answer keeps the sources it was given, so that
    /// its citations open the right passages later. Returns the answer's message id.
    pub async fn record_turn(&self, chat: i64, question: &str, answer: &Answer) -> Result<i64> {
        self.add_message(chat, &Message::new(Role::User, question), "[]")
            .await?;
        let id = self
            .add_message(
                chat,
                &Message::new(Role::Assistant, answer.text.clone()),
                &to_json(&answer.plan.sources, "[]"),
            )
            .await?;
        sqlx::query("UPDATE messages SET meta = ? WHERE id = ?")
            .bind(to_json(&AnswerMeta::of(answer), "{}"))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(id)
    }
}

/// Plain records always serialise; `empty` stands in should one ever not.
fn to_json(value: &impl serde::Serialize, empty: &str) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| empty.to_owned())
}

/// A chat as Markdown: the questions as headings, the answers, and each answer's sources.
pub fn to_markdown(title: &str, messages: &[StoredMessage]) -> String {
    let mut md = format!("# {title}\n");
    for m in messages {
        match m.message.role {
            Role::User => md.push_str(&format!("\n## {}\n", m.message.content.trim())),
            _ => {
                md.push_str(&format!("\n{}\n", m.message.content.trim()));
                if !m.sources.is_empty() {
                    md.push('\n');
                }
                for s in &m.sources {
                    md.push_str(&format!(
                        "- [{}] {} ({})\n",
                        s.n,
                        s.chunk.title,
                        s.location()
                    ));
                }
            }
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ChunkRecord;

    fn source(n: usize) -> Source {
        Source {
            n,
            chunk: ChunkRecord {
                chunk_id: n as i64,
                document_id: 1,
                path: format!("/notes/{n}.md").into(),
                title: format!("Note {n}"),
                heading: String::new(),
                page: None,
                lines: (1, 3),
                text: "text".into(),
            },
            score: 1.0,
        }
    }

    #[tokio::test]
    async fn chats_are_renamed_truncated_exported_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(&dir.path().join("c.sqlite")).await.unwrap();
        let chat = catalog.create_chat("Starter").await.unwrap();
        let ask = |q: &str| Message::new(Role::User, q);
        let answer = |a: &str| Message::new(Role::Assistant, a);
        let sources = serde_json::to_string(&[source(1), source(2)]).unwrap();
        catalog.add_message(chat, &ask("How?"), "[]").await.unwrap();
        catalog
            .add_message(chat, &answer("Feed it [1]."), &sources)
            .await
            .unwrap();
        let second = catalog.add_message(chat, &ask("Why?"), "[]").await.unwrap();
        catalog
            .add_message(chat, &answer("Yeasts [2]."), &sources)
            .await
            .unwrap();
        catalog.rename_chat(chat, "Sourdough").await.unwrap();
        assert_eq!(catalog.chats().await.unwrap()[0].title, "Sourdough");

        let stored = catalog.stored_messages(chat).await.unwrap();
        assert_eq!(stored.len(), 4);
        assert_eq!(stored[1].sources.len(), 2);
        assert_eq!(stored[1].meta, None, "no metadata was stored");
        let md = to_markdown("Sourdough", &stored);
        assert!(md.starts_with("# Sourdough\n"));
        assert!(md.contains("\n## How?\n\nFeed it [1].\n\n- [1] Note 1 (/notes/1.md:1-3)\n"));

        // Regenerating drops the last question and its answer.
        catalog.truncate_chat(chat, second).await.unwrap();
        assert_eq!(catalog.stored_messages(chat).await.unwrap().len(), 2);

        catalog.delete_chat(chat).await.unwrap();
        assert!(catalog.chats().await.unwrap().is_empty());
        assert!(catalog.stored_messages(chat).await.unwrap().is_empty());
        catalog.close().await;
    }
}
