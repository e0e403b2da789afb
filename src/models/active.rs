//! Which embedder and reranker a library uses: an explicit choice (a command-line flag), else
//! the library's setting, else the role's default model when it is downloaded. The CLI and the
//! window both start their models through here.

use std::sync::Arc;

use super::{Hub, Role, default_for, resolve};
use crate::Library;
use crate::embed::{CrossEncoder, Embedder, EmbedderOptions};
use crate::error::Result;
use crate::library::ActiveEmbedder;

/// The embedder to use; `None` means keyword search only.
pub async fn embedder(library: &Library, explicit: Option<&str>) -> Result<Option<ActiveEmbedder>> {
    let Some(choice) = choice(library, explicit, Role::Embedder).await? else {
        return Ok(None);
    };
    let resolved = resolve(&choice, &Hub::from_env())?;
    let opts = resolved
        .spec
        .as_ref()
        .map(|s| s.embedder_options())
        .unwrap_or_else(EmbedderOptions::default);
    let model = Embedder::load(&resolved.dir, &opts)?;
    Ok(Some(ActiveEmbedder {
        id: resolved.id,
        model: Arc::new(model),
    }))
}

/// The cross-encoder to re-rank with; `None` when turned off or not downloaded.
pub async fn reranker(
    library: &Library,
    explicit: Option<&str>,
) -> Result<Option<Arc<CrossEncoder>>> {
    let Some(choice) = choice(library, explicit, Role::Reranker).await? else {
        return Ok(None);
    };
    let resolved = resolve(&choice, &Hub::from_env())?;
    let max_tokens = resolved.spec.as_ref().map(|s| s.max_tokens);
    Ok(Some(Arc::new(CrossEncoder::load(
        &resolved.dir,
        max_tokens,
    )?)))
}

async fn choice(library: &Library, explicit: Option<&str>, role: Role) -> Result<Option<String>> {
    let key = if role == Role::Embedder {
        "embedder"
    } else {
        "reranker"
    };
    let chosen = match explicit {
        Some(flag) => Some(flag.to_owned()),
        None => library.catalog().setting(key).await?,
    };
    Ok(match chosen {
        Some(c) if c == "none" => None,
        Some(c) => Some(c),
        None => default_for(role)
            .filter(|s| Hub::from_env().cached_dir(s).is_some())
            .map(|s| s.id),
    })
}
