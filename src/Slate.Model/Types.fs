/// The storage-format records shared by the codecs: rows, SST metadata, manifests.
/// Storage-format types (SPEC §4): field meanings and versions are part of SlateDB's on-disk
/// format. Never rename or reorder casually; add a v2 beside v1 instead.
namespace Slate.Model

/// What a row holds.
[<RequireQualifiedAccess>]
type RowValue =
    /// A plain value (may be empty).
    | Value of byte[]
    /// A merge operand (may be empty).
    | Merge of byte[]
    /// A deletion marker.
    | Tombstone

/// One version of a key (SPEC §4.2). Timestamps are ms since the Unix epoch.
type RowEntry =
    {
        /// 1..65535 bytes in SSTs written by Slate (the codec itself accepts any u32 length).
        Key: byte[]
        /// Value, merge operand or tombstone.
        Value: RowValue
        /// Sequence number.
        Seq: uint64
        /// Creation timestamp.
        CreateTs: int64 option
        /// Expiry timestamp (never on tombstones written by Slate).
        ExpireTs: int64 option
    }

/// Per-file block compression (SPEC §4.5). Storage format: the numeric codes are on disk.
type CompressionCodec =
    | None = 0
    | Snappy = 1
    | Zlib = 2
    | Lz4 = 3
    | Zstd = 4

/// `SsTableInfo.sst_type`.
type SstType =
    | Compacted = 0
    | Wal = 1

/// `SsTableInfo.filter_format` (later SlateDB; never written by Slate).
type FilterFormat =
    | Legacy = 0
    | Composite = 1

/// The `SsTableInfo` FlatBuffer (SPEC §4.9); also copied into the manifest.
type SsTableInfo =
    {
        /// Compacted: first key; WAL: u64be first seq; None when the SST has no rows.
        FirstEntry: byte[] option
        /// Compacted: last key; always None for WAL SSTs.
        LastEntry: byte[] option
        /// Offset of the index block.
        IndexOffset: uint64
        /// Length of the index block including its CRC.
        IndexLen: uint64
        /// End of the data blocks (always written, even with no filter).
        FilterOffset: uint64
        /// Length of the filter block including its CRC (0 = no filter).
        FilterLen: uint64
        /// Block codec of the file.
        Compression: CompressionCodec
        /// Compacted or WAL.
        SstType: SstType
        /// Offset of the stats block (0 = absent).
        StatsOffset: uint64
        /// Length of the stats block including CRC (0 = absent).
        StatsLen: uint64
        /// Filter block layout; Slate always writes Legacy (the field is then omitted).
        FilterFormat: FilterFormat
    }

/// One entry of the index block (SPEC §4.6).
type BlockMeta =
    {
        /// Byte offset of the data block in the file.
        Offset: uint64
        /// Separator key (compacted SSTs) or u64be first seq (WAL SSTs).
        FirstKey: byte[]
    }

/// Per-block counters of the stats block.
type BlockStats =
    {
        /// Number of value rows.
        NumPuts: uint16
        /// Number of tombstones.
        NumDeletes: uint16
        /// Number of merge operands.
        NumMerges: uint16
    }

/// The stats block (SPEC §4.8).
type SstStats =
    {
        /// Value rows.
        NumPuts: uint64
        /// Tombstones.
        NumDeletes: uint64
        /// Merge operands.
        NumMerges: uint64
        /// Sum of key lengths.
        RawKeySize: uint64
        /// Sum of value lengths (tombstones count 0).
        RawValSize: uint64
        /// One entry per data block.
        BlockStats: BlockStats list
    }

/// A bound of a `BytesRange`.
[<RequireQualifiedAccess>]
type KeyBound =
    /// No bound.
    | Unbounded
    /// The key itself is inside the range.
    | Included of byte[]
    /// The key itself is outside the range.
    | Excluded of byte[]

/// A key range (manifest `BytesRange`).
type BytesRange =
    {
        /// Lower bound.
        Start: KeyBound
        /// Upper bound.
        End: KeyBound
    }

/// One SST referenced from the manifest (`CompactedSsTable`): L0 entry or sorted-run member.
type SstHandle =
    {
        /// The SST's ULID (also its view id in Slate's model).
        Id: Ulid
        /// Exact copy of the file's `SsTableInfo`.
        Info: SsTableInfo
        /// Footer format version (1 or 2); always written.
        FormatVersion: uint16
        /// Only for projected views (clones with ranges).
        VisibleRange: BytesRange option
    }

/// A sorted run: key-disjoint, key-ordered SSTs.
type SortedRun =
    {
        /// Sorted-run id.
        Id: uint32
        /// Its SSTs in key order.
        Ssts: SstHandle list
    }

/// A checkpoint entry (SPEC §4.14, §5.13).
type Checkpoint =
    {
        /// Checkpoint id (UUID v4).
        Id: Uuid
        /// The manifest version it pins.
        ManifestId: uint64
        /// Unix seconds; None = never expires (stored as 0).
        ExpireTimeS: uint32 option
        /// Unix seconds.
        CreateTimeS: uint32
        /// Optional label.
        Name: string option
    }

/// An `ExternalDb` entry of a clone.
type ExternalDb =
    {
        /// Root path of the other database.
        Path: string
        /// Checkpoint in the source the clone was made from.
        SourceCheckpointId: Uuid
        /// Checkpoint that pins the source for the clone's lifetime.
        FinalCheckpointId: Uuid option
        /// SSTs owned by that database still referenced here.
        SstIds: Ulid list
    }

/// The immutable manifest (SPEC §4.14). The id is the object name, not a field.
type Manifest =
    {
        /// Clone bookkeeping (empty for normal databases).
        ExternalDbs: ExternalDb list
        /// False for a clone until its WAL copy finished.
        Initialized: bool
        /// Writer fencing token.
        WriterEpoch: uint64
        /// Compactor fencing token.
        CompactorEpoch: uint64
        /// WAL replay starts at this + 1.
        ReplayAfterWalId: uint64
        /// `next_wal_sst_id - 1` when written.
        WalIdLastSeen: uint64
        /// ULID of the newest L0 consumed by the latest L0 compaction.
        L0LastCompacted: Ulid option
        /// L0 SSTs, newest first.
        L0: SstHandle list
        /// Sorted runs, id descending.
        Compacted: SortedRun list
        /// Max create_ts in L0 and sorted runs (initially Int64.MinValue).
        LastL0ClockTick: int64
        /// Checkpoints.
        Checkpoints: Checkpoint list
        /// Highest seq in L0 and sorted runs.
        LastL0Seq: uint64
        /// Present only with a separate WAL store (Slate refuses to open those as writer).
        WalObjectStoreUri: string option
        /// Compaction retention boundary.
        RecentSnapshotMinSeq: uint64
        /// Encoded sequence-tracker blob (SPEC §4.15), kept verbatim.
        SequenceTracker: byte[]
    }
