using Microsoft.FSharp.Core;
using E = Slate.Engine;
using M = Slate.Model;

namespace Slate;

/// <summary>How a <see cref="SlateReader"/> pins the database state.</summary>
public enum ReaderMode
{
    /// <summary>The reader keeps its own checkpoint on the latest manifest, replaces it as the database moves on and deletes it at close.</summary>
    ManagedCheckpoint = 0,
    /// <summary>Pinned to the existing checkpoint <see cref="ReaderOptions.CheckpointId"/>; no polling, no writes.</summary>
    Checkpoint = 1,
    /// <summary>Follows the latest manifest without writing anything.</summary>
    FollowLatest = 2,
}

/// <summary>Settings of a <see cref="SlateReader"/>.</summary>
public sealed class ReaderOptions
{
    /// <summary>The mode (default <see cref="ReaderMode.ManagedCheckpoint"/>).</summary>
    public ReaderMode Mode { get; set; } = ReaderMode.ManagedCheckpoint;
    /// <summary>The checkpoint of <see cref="ReaderMode.Checkpoint"/> (required there).</summary>
    public Guid? CheckpointId { get; set; }
    /// <summary>How often the manifest and the WAL are polled (default 10 s).</summary>
    public TimeSpan ManifestPollInterval { get; set; } = TimeSpan.FromSeconds(10);
    /// <summary>Lifetime of the managed checkpoint (default 10 min; at least 1 s and twice the poll interval).</summary>
    public TimeSpan CheckpointLifetime { get; set; } = TimeSpan.FromMinutes(10);
    /// <summary>Bound of the replayed WAL rows held in memory (default 64 MiB).</summary>
    public long MaxMemtableBytes { get; set; } = 64L * 1024 * 1024;
    /// <summary>Do not replay WAL SSTs newer than the manifest's last seen WAL id.</summary>
    public bool SkipWalReplay { get; set; }
    /// <summary>Merge operator for databases with merge operands.</summary>
    public IMergeOperator? MergeOperator { get; set; }
    /// <summary>Clock (default the system clock).</summary>
    public TimeProvider? TimeProvider { get; set; }
    /// <summary>Object-store retries of transient failures; null retries until closed.</summary>
    public int? ObjectStoreMaxRetries { get; set; }

    internal E.ReaderSettings ToEngine()
    {
        var d = E.ReaderSettingsModule.defaults;
        return new E.ReaderSettings(
            (E.ReaderMode)(int)Mode,
            CheckpointId.HasValue ? FSharpOption<Guid>.Some(CheckpointId.Value) : FSharpOption<Guid>.None,
            ManifestPollInterval,
            CheckpointLifetime,
            MaxMemtableBytes,
            SkipWalReplay,
            MergeOperator is null ? d.MergeOperator : FSharpOption<FSharpFunc<byte[], FSharpFunc<FSharpOption<byte[]>, FSharpFunc<byte[], byte[]>>>>.Some(Convert.Merge(MergeOperator)),
            TimeProvider ?? d.TimeProvider,
            d.RandomSeed,
            ObjectStoreMaxRetries.HasValue ? FSharpOption<int>.Some(ObjectStoreMaxRetries.Value) : FSharpOption<int>.None);
    }
}

/// <summary>Which writes a checkpoint made by <see cref="SlateClient.CreateCheckpointAsync"/> covers.</summary>
public enum CheckpointScope
{
    /// <summary>Every write made before the call (the WAL and the memtable are flushed first).</summary>
    All = 0,
    /// <summary>What is already durable; no forced memtable freeze.</summary>
    Durable = 1,
}

/// <summary>Options of a new checkpoint.</summary>
public sealed class CheckpointOptions
{
    /// <summary>Lifetime; null = never expires.</summary>
    public TimeSpan? Lifetime { get; set; }
    /// <summary>Copy this checkpoint's manifest id instead of pinning the current version.</summary>
    public Guid? Source { get; set; }
    /// <summary>Optional label (not unique).</summary>
    public string? Name { get; set; }

    internal static E.CheckpointOptions ToEngine(CheckpointOptions? o) =>
        new(
            o?.Lifetime is TimeSpan l ? FSharpOption<TimeSpan>.Some(l) : FSharpOption<TimeSpan>.None,
            o?.Source is Guid s ? FSharpOption<Guid>.Some(s) : FSharpOption<Guid>.None,
            o?.Name is string n ? FSharpOption<string>.Some(n) : FSharpOption<string>.None);
}

/// <summary>What <see cref="SlateClient.CreateCheckpointAsync"/> returns.</summary>
/// <param name="Id">The checkpoint id.</param>
/// <param name="ManifestId">The manifest version it pins.</param>
public sealed record CheckpointResult(Guid Id, ulong ManifestId);

/// <summary>A checkpoint entry of the manifest.</summary>
/// <param name="Id">The checkpoint id.</param>
/// <param name="ManifestId">The manifest version it pins.</param>
/// <param name="CreatedAt">Creation time (whole seconds).</param>
/// <param name="ExpiresAt">Expiry (whole seconds), or null when it never expires.</param>
/// <param name="Name">Optional label.</param>
public sealed record Checkpoint(Guid Id, ulong ManifestId, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt, string? Name)
{
    internal static Checkpoint Of(M.Checkpoint c) =>
        new(M.UuidModule.toGuid(c.Id), c.ManifestId, DateTimeOffset.FromUnixTimeSeconds(c.CreateTimeS),
            FSharpOption<uint>.get_IsSome(c.ExpireTimeS) ? DateTimeOffset.FromUnixTimeSeconds(c.ExpireTimeS.Value) : null,
            FSharpOption<string>.get_IsSome(c.Name) ? c.Name.Value : null);
}

/// <summary>An SST referenced by a manifest.</summary>
/// <param name="Id">The SST's ULID.</param>
/// <param name="Size">Object size in bytes (-1 when the object is gone).</param>
/// <param name="FirstKey">First key.</param>
/// <param name="LastKey">Last key.</param>
public sealed record SstInfo(string Id, long Size, ReadOnlyMemory<byte> FirstKey, ReadOnlyMemory<byte> LastKey);

/// <summary>A sorted run of a manifest.</summary>
/// <param name="Id">Sorted-run id.</param>
/// <param name="Ssts">Its SSTs in key order.</param>
public sealed record SortedRunInfo(uint Id, IReadOnlyList<SstInfo> Ssts);

/// <summary>One manifest version.</summary>
/// <param name="Id">Manifest id.</param>
/// <param name="WriterEpoch">Writer fencing epoch.</param>
/// <param name="CompactorEpoch">Compactor fencing epoch.</param>
/// <param name="ReplayAfterWalId">WAL replay starts after this id.</param>
/// <param name="NextWalSstId">Next WAL SST id (last seen + 1).</param>
/// <param name="LastL0Seq">Highest seq in L0 and sorted runs.</param>
/// <param name="L0">L0 SSTs, newest first.</param>
/// <param name="SortedRuns">Sorted runs, highest id first.</param>
/// <param name="Checkpoints">Checkpoints.</param>
public sealed record ManifestInfo(ulong Id, ulong WriterEpoch, ulong CompactorEpoch, ulong ReplayAfterWalId, ulong NextWalSstId, ulong LastL0Seq,
    IReadOnlyList<SstInfo> L0, IReadOnlyList<SortedRunInfo> SortedRuns, IReadOnlyList<Checkpoint> Checkpoints)
{
    internal static ManifestInfo Of(E.StoredManifest s, IReadOnlyDictionary<string, long> sizes)
    {
        var m = s.Manifest;
        SstInfo Sst(M.SstHandle h)
        {
            var id = M.UlidModule.toString(h.Id);
            var first = FSharpOption<byte[]>.get_IsSome(h.Info.FirstEntry) ? h.Info.FirstEntry.Value : Array.Empty<byte>();
            var last = FSharpOption<byte[]>.get_IsSome(h.Info.LastEntry) ? h.Info.LastEntry.Value : Array.Empty<byte>();
            return new SstInfo(id, sizes.TryGetValue(id, out var n) ? n : -1, first, last);
        }
        return new ManifestInfo(s.Id, m.WriterEpoch, m.CompactorEpoch, m.ReplayAfterWalId, m.WalIdLastSeen + 1, m.LastL0Seq,
            m.L0.Select(Sst).ToList(),
            m.Compacted.Select(sr => new SortedRunInfo(sr.Id, sr.Ssts.Select(Sst).ToList())).ToList(),
            m.Checkpoints.Select(Checkpoint.Of).ToList());
    }
}
