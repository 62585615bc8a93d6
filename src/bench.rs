//! `tributary bench store` (being written).

pub fn store(_args: crate::cli::BenchStoreArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet built")
}
