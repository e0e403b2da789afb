//! What the learner panels draw, computed from what really happened: the embedding space of the
//! library (`projection` for PCA, `umap` for UMAP, `space` for the points with their labels),
//! where an answer's attention went (`attention`), and how passages moved through the retrieval
//! stages (`retrieval`). Pure functions over the engine's and the library's outputs, so the GUI
//! only draws and the tests check the numbers.

pub mod attention;
pub mod projection;
pub mod retrieval;
pub mod space;
pub mod umap;
