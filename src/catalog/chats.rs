//! Chat history: conversations and their messages.

use super::Catalog;
use crate::error::Result;
use crate::llm::{Message, Role};

#[derive(Debug, Clone, serde::Serialize)]
pub struct ChatSummary {
    pub id: i64,
    pub title: String,
    pub messages: i64,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
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

    /// The messages of a chat, oldest first.
    pub async fn messages(&self, chat: i64) -> Result<Vec<Message>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT role, content FROM messages WHERE chat_id = ? ORDER BY id")
                .bind(chat)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(role, content)| {
                let role = match role.as_str() {
                    "system" => Role::System,
                    "assistant" => Role::Assistant,
                    _ => Role::User,
                };
                Message::new(role, content)
            })
            .collect())
    }
}
