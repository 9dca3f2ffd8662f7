/// The manifest's pure transitions (SPEC §5.2-§5.5, §5.13): publishing L0s, fencing epochs,
/// checkpoints, and the merge by field ownership used by the compare-and-swap loop.
namespace Slate.Model

/// Why a manifest transition was refused.
[<RequireQualifiedAccess>]
type ManifestError =
    /// A newer writer (or compactor) holds a higher epoch.
    | Fenced of expected: uint64 * found: uint64
    /// The clock of a published memtable is behind the manifest's.
    | ClockWentBackwards of manifestTick: int64 * memtableTick: int64
    /// The transition does not apply to this manifest.
    | Invalid of string

/// Functions over `Manifest` (values and transitions).
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module Manifest =
    /// The manifest of a new database (id 1), SPEC §4.14.
    let initial: Manifest =
        { ExternalDbs = []
          Initialized = true
          WriterEpoch = 0UL
          CompactorEpoch = 0UL
          ReplayAfterWalId = 0UL
          WalIdLastSeen = 0UL
          L0LastCompacted = None
          L0 = []
          Compacted = []
          LastL0ClockTick = System.Int64.MinValue
          Checkpoints = []
          LastL0Seq = 0UL
          WalObjectStoreUri = None
          RecentSnapshotMinSeq = 0UL
          SequenceTracker = SequenceTracker.encode SequenceTracker.empty }

    /// The next WAL id a writer would use given this manifest alone.
    let nextWalId (m: Manifest) : uint64 = m.WalIdLastSeen + 1UL

    /// A new writer's epoch bump.
    let withWriterEpoch (epoch: uint64) (m: Manifest) : Manifest = { m with WriterEpoch = epoch }

    /// A new compactor's epoch bump.
    let withCompactorEpoch (epoch: uint64) (m: Manifest) : Manifest = { m with CompactorEpoch = epoch }

    /// Fails with `Fenced` when the manifest's writer epoch is not ours.
    let checkWriterEpoch (epoch: uint64) (m: Manifest) : Result<unit, ManifestError> =
        if m.WriterEpoch = epoch then
            Ok()
        else
            Error(ManifestError.Fenced(epoch, m.WriterEpoch))

    /// Fails with `Fenced` when the manifest's compactor epoch is not ours.
    let checkCompactorEpoch (epoch: uint64) (m: Manifest) : Result<unit, ManifestError> =
        if m.CompactorEpoch = epoch then
            Ok()
        else
            Error(ManifestError.Fenced(epoch, m.CompactorEpoch))

    /// What publishing one L0 SST changes (SPEC §5.5).
    type L0Publish =
        {
            /// The uploaded SST.
            Sst: SstHandle
            /// `recent_flushed_wal_id` stamped on the memtable at freeze time.
            ReplayAfterWalId: uint64
            /// The memtable's last create_ts tick.
            LastTick: int64
            /// The last seq in the memtable.
            LastSeq: uint64
            /// Oldest active snapshot/transaction seq, if any.
            OldestSnapshotSeq: uint64 option
        }

    /// Publishes one L0 (prepends it, advances the writer scalars). `walIdLastSeen` is the writer's
    /// `next_wal_sst_id - 1` at write time.
    let publishL0 (walIdLastSeen: uint64) (p: L0Publish) (m: Manifest) : Result<Manifest, ManifestError> =
        if p.LastTick < m.LastL0ClockTick then
            Error(ManifestError.ClockWentBackwards(m.LastL0ClockTick, p.LastTick))
        elif p.LastSeq < m.LastL0Seq then
            Error(ManifestError.Invalid(sprintf "L0 last seq %d below manifest last_l0_seq %d" p.LastSeq m.LastL0Seq))
        else
            Ok
                { m with
                    L0 = p.Sst :: m.L0
                    ReplayAfterWalId = max m.ReplayAfterWalId p.ReplayAfterWalId
                    WalIdLastSeen = max m.WalIdLastSeen (max walIdLastSeen p.ReplayAfterWalId)
                    LastL0ClockTick = max m.LastL0ClockTick p.LastTick
                    LastL0Seq = p.LastSeq
                    RecentSnapshotMinSeq =
                        match p.OldestSnapshotSeq with
                        | Some s -> min s p.LastSeq
                        | None -> p.LastSeq }

    /// Records the writer's WAL position without publishing anything.
    let withWalIdLastSeen (walIdLastSeen: uint64) (m: Manifest) : Manifest =
        { m with
            WalIdLastSeen = max m.WalIdLastSeen walIdLastSeen }

    /// The local L0 list cut before the first entry whose id is `marker` (all of it when absent
    /// or not found).
    let cutL0Before (marker: Ulid option) (l0: SstHandle list) : SstHandle list =
        match marker with
        | None -> l0
        | Some id ->
            match List.tryFindIndex (fun (s: SstHandle) -> s.Id = id) l0 with
            | None -> l0
            | Some i -> List.take i l0

    /// The writer's merge (SPEC §5.2): take compactor-owned fields, checkpoints and external dbs
    /// from the remote (latest) version, keep the writer scalars of the local view, and keep the
    /// local L0 list cut before the remote `l0_last_compacted`. The writer epoch stays the local one:
    /// callers check fencing (`checkWriterEpoch` on the remote) before merging.
    let mergeForWriter (local: Manifest) (remote: Manifest) : Manifest =
        { local with
            Compacted = remote.Compacted
            L0LastCompacted = remote.L0LastCompacted
            CompactorEpoch = remote.CompactorEpoch
            Checkpoints = remote.Checkpoints
            ExternalDbs = remote.ExternalDbs
            L0 = cutL0Before remote.L0LastCompacted local.L0 }

    /// The compactor's merge (SPEC §5.2): take the remote L0 cut before the local marker, every
    /// writer scalar, the writer epoch, checkpoints and external dbs; keep compactor fields.
    let mergeForCompactor (local: Manifest) (remote: Manifest) : Manifest =
        { remote with
            L0 = cutL0Before local.L0LastCompacted remote.L0
            Compacted = local.Compacted
            L0LastCompacted = local.L0LastCompacted
            CompactorEpoch = local.CompactorEpoch }

    /// Adds a checkpoint.
    let addCheckpoint (c: Checkpoint) (m: Manifest) : Manifest =
        { m with
            Checkpoints = m.Checkpoints @ [ c ] }

    /// Removes a checkpoint by id (no error if absent).
    let removeCheckpoint (id: Uuid) (m: Manifest) : Manifest =
        { m with
            Checkpoints = m.Checkpoints |> List.filter (fun c -> c.Id <> id) }

    /// Finds a checkpoint by id.
    let tryFindCheckpoint (id: Uuid) (m: Manifest) : Checkpoint option =
        m.Checkpoints |> List.tryFind (fun c -> c.Id = id)

    /// Removes the checkpoints that expired at or before `nowS` (Unix seconds).
    let expireCheckpoints (nowS: uint32) (m: Manifest) : Manifest =
        { m with
            Checkpoints =
                m.Checkpoints
                |> List.filter (fun c ->
                    match c.ExpireTimeS with
                    | Some e -> e > nowS
                    | None -> true) }

    /// Every SST handle referenced (L0 then sorted runs).
    let allSsts (m: Manifest) : SstHandle list =
        m.L0 @ (m.Compacted |> List.collect (fun sr -> sr.Ssts))
