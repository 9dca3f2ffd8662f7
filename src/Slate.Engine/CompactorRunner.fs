/// Entry points of the compactor: standalone (until cancelled) and embedded in a writer.
namespace Slate.Engine

open System
open System.Threading
open System.Threading.Tasks
open Microsoft.Extensions.Logging
open Slate

/// Entry points of the compactor.
[<RequireQualifiedAccess>]
module CompactorRunner =
    let private retrying (store: IObjectStore) (options: DbOptions) : IObjectStore =
        RetryingObjectStore.ensure
            options.ObjectStoreMaxRetries
            options.TimeProvider
            (defaultArg options.RandomSeed (Random.Shared.Next()))
            store

    /// A standalone compactor: fences, then compacts until `ct` is cancelled, then completes
    /// normally. Raises `Closed(Fenced)` when a newer compactor takes over; `observer` sees
    /// every finished job.
    let runWithAsync
        (store: IObjectStore)
        (dbPath: string)
        (settings: CompactorSettings)
        (options: DbOptions)
        (observer: CompactionReport -> unit)
        (ct: CancellationToken)
        : Task =
        task {
            let log = Logging.create options.LoggerFactory Logging.CompactorCategory

            try
                let store = retrying store options
                let! c = Compactor.StartAsync(store, dbPath, settings, options, None, observer, ct)
                do! c.RunAsync ct
            with
            | :? OperationCanceledException when ct.IsCancellationRequested -> ()
            | :? SlateException as e when e.Kind = SlateErrorKind.Closed ->
                log.LogWarning("compactor of {DbPath} stopped: {Reason}", dbPath, e.Message)
                Runtime.ExceptionServices.ExceptionDispatchInfo.Throw e
            | e when not ct.IsCancellationRequested ->
                log.LogError(e, "compactor of {DbPath} failed: {Error}", dbPath, e.Message)
                Runtime.ExceptionServices.ExceptionDispatchInfo.Throw e
        }

    /// `runWithAsync` without an observer.
    let runAsync
        (store: IObjectStore)
        (dbPath: string)
        (settings: CompactorSettings)
        (options: DbOptions)
        (ct: CancellationToken)
        : Task =
        runWithAsync store dbPath settings options ignore ct

    /// The embedded compactor of a writer: runs until `ct` (the writer's shutdown) is cancelled.
    /// Stops for good when fenced by a newer compactor; after any other failure it waits one
    /// poll interval and starts again (re-fencing). Never faults.
    let runEmbeddedAsync
        (store: IObjectStore)
        (dbPath: string)
        (settings: CompactorSettings)
        (options: DbOptions)
        (tables: TableStore)
        (ct: CancellationToken)
        : Task =
        backgroundTask {
            let log = Logging.create options.LoggerFactory Logging.CompactorCategory
            let mutable go = true

            while go && not ct.IsCancellationRequested do
                try
                    let! c = Compactor.StartAsync(store, dbPath, settings, options, Some tables, ignore, ct)
                    do! c.RunAsync ct
                    go <- false
                with
                | :? OperationCanceledException -> go <- false
                // the writer is closing: whatever the call was doing, it was cut short
                | e when ct.IsCancellationRequested ->
                    log.LogDebug("embedded compactor of {DbPath} interrupted by close: {Error}", dbPath, e.Message)
                    go <- false
                | :? SlateException as e when e.Kind = SlateErrorKind.Closed ->
                    log.LogWarning("embedded compactor of {DbPath} stopped: {Reason}", dbPath, e.Message)
                    go <- false
                | e ->
                    log.LogError(
                        e,
                        "embedded compactor of {DbPath} failed, restarting in {Delay}: {Error}",
                        dbPath,
                        settings.PollInterval,
                        e.Message
                    )

                    try
                        do! Task.Delay(settings.PollInterval, options.TimeProvider, ct)
                    with :? OperationCanceledException ->
                        go <- false
        }
