//! tenure client
