using Microsoft.FSharp.Core;
using E = Slate.Engine;

namespace Slate;

/// <summary>Operations on a database without a writer: manifest queries and checkpoints.</summary>
public sealed class SlateAdmin
{
    private readonly E.Admin _admin;

    private SlateAdmin(E.Admin admin) => _admin = admin;

    /// <summary>The engine admin (for the F# API and tools).</summary>
    internal E.Admin Engine => _admin;

    /// <summary>An admin of the database at <paramref name="path"/>.</summary>
    /// <param name="path">Database path inside the store.</param>
    /// <param name="store">The object store.</param>
    /// <returns>The admin.</returns>
    public static SlateAdmin Create(string path, ObjectStore store) => Create(path, store, null);

    /// <summary>An admin of the database at <paramref name="path"/> whose garbage-collection passes (category
    /// <c>Slate.Gc</c>) and standalone compactor (<c>Slate.Compactor</c>) log to <paramref name="loggerFactory"/>.</summary>
    /// <param name="path">Database path inside the store.</param>
    /// <param name="store">The object store.</param>
    /// <param name="loggerFactory">Logger factory; null = no logging.</param>
    /// <returns>The admin.</returns>
    public static SlateAdmin Create(string path, ObjectStore store, Microsoft.Extensions.Logging.ILoggerFactory? loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(store);
        return new SlateAdmin(E.Admin.Create(store.Inner, path, TimeProvider.System, FSharpOption<int>.None,
            loggerFactory ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance));
    }

    private async Task<IReadOnlyDictionary<string, long>> SizesAsync(CancellationToken ct)
    {
        var sizes = await _admin.SstSizesAsync(ct).ConfigureAwait(false);
        return sizes.ToDictionary(kv => Model.UlidModule.toString(kv.Key), kv => kv.Value);
    }

    /// <summary>The manifest with this id, or the latest; null when absent.</summary>
    /// <param name="id">Manifest id, or null for the latest.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The manifest or null.</returns>
    public async Task<ManifestInfo?> ReadManifestAsync(ulong? id = null, CancellationToken cancellationToken = default)
    {
        var m = await _admin.ReadManifestAsync(id.HasValue ? FSharpOption<ulong>.Some(id.Value) : FSharpOption<ulong>.None, cancellationToken).ConfigureAwait(false);
        if (FSharpOption<E.StoredManifest>.get_IsNone(m)) return null;
        return ManifestInfo.Of(m.Value, await SizesAsync(cancellationToken).ConfigureAwait(false));
    }

    /// <summary>Manifests with ids in the half-open range [<paramref name="from"/>, <paramref name="to"/>), ascending; <c>from &gt;= to</c> gives none.</summary>
    /// <param name="from">Lowest id (inclusive), or null.</param>
    /// <param name="to">Highest id (exclusive), or null.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The manifests.</returns>
    public async Task<IReadOnlyList<ManifestInfo>> ListManifestsAsync(ulong? from = null, ulong? to = null, CancellationToken cancellationToken = default)
    {
        var list = await _admin.ListManifestsAsync(
            from.HasValue ? FSharpOption<ulong>.Some(from.Value) : FSharpOption<ulong>.None,
            to.HasValue ? FSharpOption<ulong>.Some(to.Value) : FSharpOption<ulong>.None,
            cancellationToken).ConfigureAwait(false);
        var sizes = await SizesAsync(cancellationToken).ConfigureAwait(false);
        return list.Select(m => ManifestInfo.Of(m, sizes)).ToList();
    }

    /// <summary>Checkpoints of the latest manifest: all, or those with exactly this name.</summary>
    /// <param name="name">Name filter, or null.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The checkpoints.</returns>
    public async Task<IReadOnlyList<Checkpoint>> ListCheckpointsAsync(string? name = null, CancellationToken cancellationToken = default)
    {
        var list = await _admin.ListCheckpointsAsync(name is null ? FSharpOption<string>.None : FSharpOption<string>.Some(name), cancellationToken).ConfigureAwait(false);
        return list.Select(Checkpoint.Of).ToList();
    }

    /// <summary>A checkpoint of the latest manifest without flushing any writer; <see cref="CheckpointOptions.Source"/> copies another checkpoint's manifest id.</summary>
    /// <param name="options">Lifetime, source and name.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The checkpoint.</returns>
    public async Task<Checkpoint> CreateDetachedCheckpointAsync(CheckpointOptions? options = null, CancellationToken cancellationToken = default) =>
        Checkpoint.Of(await _admin.CreateDetachedCheckpointAsync(CheckpointOptions.ToEngine(options), cancellationToken).ConfigureAwait(false));

    /// <summary>Sets a checkpoint's expiry to now + <paramref name="lifetime"/> (null = never); an unknown id → Data.</summary>
    /// <param name="id">The checkpoint.</param>
    /// <param name="lifetime">New lifetime, or null.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>The updated checkpoint.</returns>
    public async Task<Checkpoint> RefreshCheckpointAsync(Guid id, TimeSpan? lifetime, CancellationToken cancellationToken = default) =>
        Checkpoint.Of(await _admin.RefreshCheckpointAsync(id, lifetime.HasValue ? FSharpOption<TimeSpan>.Some(lifetime.Value) : FSharpOption<TimeSpan>.None, cancellationToken).ConfigureAwait(false));

    /// <summary>Removes a checkpoint; an absent id is not an error.</summary>
    /// <param name="id">The checkpoint.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>A task.</returns>
    public Task DeleteCheckpointAsync(Guid id, CancellationToken cancellationToken = default) => _admin.DeleteCheckpointAsync(id, cancellationToken);

    /// <summary>One garbage-collection pass in the foreground (SPEC §5.12): expired checkpoints, old manifests,
    /// WAL files, compacted SSTs and compactor states older than <see cref="GarbageCollectorOptions.MinAge"/>.
    /// A delete that fails is retried by the next pass.</summary>
    /// <param name="options">GC settings, or null for the defaults.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>A task.</returns>
    public Task RunGarbageCollectionOnceAsync(GarbageCollectorOptions? options = null, CancellationToken cancellationToken = default) =>
        _admin.RunGarbageCollectionOnceAsync((options ?? new GarbageCollectorOptions()).ToEngine(), cancellationToken);

    /// <summary>Makes the database of this admin a clone of <paramref name="sourcePath"/> (in the same store): it
    /// shares the source's SSTs in place and copies its WAL tail. The clone starts from
    /// <paramref name="sourceCheckpoint"/> of the source, or from a new checkpoint of its latest state. Re-running an
    /// interrupted clone with the same arguments finishes it. Same path, or another database already at this path →
    /// Invalid; no source manifest or an unknown checkpoint → Data.</summary>
    /// <param name="sourcePath">Path of the source database inside the store.</param>
    /// <param name="sourceCheckpoint">A checkpoint of the source, or null for its latest state.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <returns>A task.</returns>
    public Task CreateCloneAsync(string sourcePath, Guid? sourceCheckpoint = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sourcePath);
        return _admin.CreateCloneAsync(sourcePath, sourceCheckpoint.HasValue ? FSharpOption<Guid>.Some(sourceCheckpoint.Value) : FSharpOption<Guid>.None, cancellationToken);
    }

    /// <summary>Runs the standalone compactor until <paramref name="cancellationToken"/> is cancelled; then the task
    /// completes normally. It fences any older compactor of this database. Merge rows are combined with
    /// <see cref="CompactorOptions.MergeOperator"/>; without one, jobs over merge rows fail (logged, retried after a
    /// back-off) and leave the data as it was.</summary>
    /// <param name="options">Compactor settings, or null for the defaults.</param>
    /// <param name="cancellationToken">Stops the compactor.</param>
    /// <returns>A task that completes when the compactor has stopped.</returns>
    public Task RunCompactorAsync(CompactorOptions? options = null, CancellationToken cancellationToken = default)
    {
        var o = options ?? new CompactorOptions();
        var merge = o.MergeOperator is null
            ? FSharpOption<FSharpFunc<byte[], FSharpFunc<FSharpOption<byte[]>, FSharpFunc<byte[], byte[]>>>>.None
            : FSharpOption<FSharpFunc<byte[], FSharpFunc<FSharpOption<byte[]>, FSharpFunc<byte[], byte[]>>>>.Some(Convert.Merge(o.MergeOperator));
        return _admin.RunCompactorAsync(o.ToEngine(), merge, cancellationToken);
    }
}
