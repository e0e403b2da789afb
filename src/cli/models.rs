//! `glassbox models ...` (the embedder and reranker a command uses are chosen by
//! `glassbox::models::active`).

use clap::Subcommand;
use glassbox::Library;
use glassbox::models::{self, Hub};
use indicatif::ProgressBar;

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Known models, their size, weight type (e.g. Q4_K_M), licence, languages, and whether they
    /// are downloaded.
    List,
    /// Download a known model into the Hugging Face cache (resumes an interrupted download).
    Download { id: String },
    /// Print the folder of a downloaded model.
    Path { id: String },
    /// Make a model (known id or folder) the library's embedder or reranker; `none` turns the
    /// reranker off.
    Use {
        model: String,
        #[arg(long, value_parser = ["embedder", "reranker"], default_value = "embedder")]
        role: String,
    },
}

pub fn run(command: ModelsCommand) -> anyhow::Result<()> {
    let hub = Hub::from_env();
    match command {
        ModelsCommand::List => {
            println!(
                "{:<46} {:<9} {:>9}  {:<7} {:<11} {:<10} languages",
                "id", "role", "size", "weights", "licence", "status"
            );
            for spec in models::known() {
                let status = if hub.cached_dir(&spec).is_some() {
                    "downloaded"
                } else {
                    "-"
                };
                let role = format!("{:?}{}", spec.role, if spec.default { "*" } else { "" })
                    .to_lowercase();
                println!(
                    "{:<46} {:<9} {:>6} MB  {:<7} {:<11} {:<10} {}",
                    spec.id,
                    role,
                    spec.size() / 1_000_000,
                    spec.quantization.as_deref().unwrap_or("-"),
                    spec.license,
                    status,
                    spec.languages.join(", ")
                );
            }
            println!("* default for its role");
        }
        ModelsCommand::Download { id } => {
            let spec = models::find(&id)?;
            let bar = download_bar();
            let dir = hub.download(&spec, &mut |p| {
                if let Some(bar) = &bar {
                    bar.set_length(p.total);
                    bar.set_position(p.done);
                    bar.set_message(p.file.clone());
                }
            })?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            println!("{}", dir.display());
        }
        ModelsCommand::Path { id } => {
            let spec = models::find(&id)?;
            let dir = hub.cached_dir(&spec).ok_or_else(|| {
                anyhow::anyhow!("{id} is not downloaded; run `glassbox models download {id}`")
            })?;
            println!("{}", dir.display());
        }
        ModelsCommand::Use { .. } => unreachable!("needs a library: handled by the caller"),
    }
    Ok(())
}

fn download_bar() -> Option<ProgressBar> {
    super::progress::terminal_bar(
        true,
        "[{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
    )
}

/// Stores a model choice in the library's settings.
pub async fn use_model(library: &Library, model: &str, role: &str) -> anyhow::Result<()> {
    if !(role == "reranker" && model == "none") {
        models::resolve(model, &Hub::from_env())?;
    }
    library.catalog().set_setting(role, model).await?;
    println!("{role}: {model}");
    Ok(())
}
