# Sourced by store.sh, hnsw.sh and filter.sh: their benchmarks run on huge pages.
# glibc's malloc asks for transparent huge pages (granted by the kernel's
# "madvise" mode, Debian's default) and keeps blocks under 32 MiB in its heap,
# where they apply. On 4 KiB pages a search's speed depends on the pages its
# index landed on, the same in every repeat of a process and different in the
# next: in three runs of IVF1024,Flat at 100k, raw FAISS against a copy of
# itself came out up to 7.4% apart and the store's overhead anywhere from
# +2.5% to +13.9%; on huge pages the copy was within 0.8% (docs/benchmarks.md,
# the store section).
# It also keeps what is freed (trim_threshold 1 GiB): FAISS takes a 16 MiB block
# for every batched matrix product (an IVF batch's coarse quantizer) and glibc
# handed it back to the kernel on free, so the next batch faulted in new huge
# pages the kernel zeroed first (3.6% of a batch run's samples in perf, and 2%
# more in the TLB flushes of giving them back). Raw FAISS's batches of 64 at
# nprobe 1 ran anywhere from 23k to 76k QPS in four runs, 67k to 94k in seven
# with it (store_bench, IVF1024,Flat over 100k x 384).
export GLIBC_TUNABLES="glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824${GLIBC_TUNABLES:+:$GLIBC_TUNABLES}"
