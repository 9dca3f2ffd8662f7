/// Logger categories and helpers (`Microsoft.Extensions.Logging`). The model stays pure: only the
/// engine logs, through the factory of `DbOptions.LoggerFactory`.
namespace Slate.Engine

open Microsoft.Extensions.Logging
open Microsoft.Extensions.Logging.Abstractions
open Slate.Model

/// Logger categories and helpers.
[<RequireQualifiedAccess>]
module Logging =
    /// The writer: open, fenced, failed, closed.
    [<Literal>]
    let DbCategory = "Slate.Db"

    /// The compactor: start, fence, stop, each job planned, finished or failed.
    [<Literal>]
    let CompactorCategory = "Slate.Compactor"

    /// The garbage collector: pass summaries, failed deletes, failed passes.
    [<Literal>]
    let GcCategory = "Slate.Gc"

    /// A logger of `category` from `factory` (a null factory gives the null logger).
    let create (factory: ILoggerFactory) (category: string) : ILogger =
        if isNull (box factory) then
            NullLogger.Instance :> ILogger
        else
            factory.CreateLogger category

    /// The sources of a compaction as text: `L0 [ulid, ...] + SR [3, 2]`.
    let describeSources (spec: CompactionSpec) : string =
        let l0 = spec.L0 |> List.map Ulid.toString |> String.concat ", "
        let srs = spec.SortedRuns |> List.map string |> String.concat ", "

        match spec.L0, spec.SortedRuns with
        | [], _ -> sprintf "SR [%s]" srs
        | _, [] -> sprintf "L0 [%s]" l0
        | _ -> sprintf "L0 [%s] + SR [%s]" l0 srs

    /// A job was submitted (Information), with its estimated input size.
    let jobPlanned (log: ILogger) (dbPath: string) (id: Ulid) (spec: CompactionSpec) (m: Manifest) : unit =
        let bytesIn =
            Compaction.inputs m spec
            |> Result.map (List.sumBy (List.sumBy (fun h -> int64 (SizeTiered.sstSize h))))
            |> Result.defaultValue 0L

        log.LogInformation(
            "compaction {JobId} of {DbPath} planned: {Sources} -> SR {Destination}, about {BytesIn} bytes in",
            Ulid.toString id,
            dbPath,
            describeSources spec,
            spec.Destination,
            bytesIn
        )

    /// A job was committed (Information), with its sizes.
    let jobFinished
        (log: ILogger)
        (dbPath: string)
        (id: Ulid)
        (spec: CompactionSpec)
        (bytesIn: int64)
        (bytesOut: int64)
        (outputs: int)
        : unit =
        log.LogInformation(
            "compaction {JobId} of {DbPath} finished: {Sources} -> SR {Destination}, {BytesIn} bytes in, {BytesOut} bytes out in {OutputSsts} SSTs",
            Ulid.toString id,
            dbPath,
            describeSources spec,
            spec.Destination,
            bytesIn,
            bytesOut,
            outputs
        )

    /// A job failed (Warning): the cause, and how long its sources are left alone.
    let jobFailed
        (log: ILogger)
        (dbPath: string)
        (id: Ulid)
        (spec: CompactionSpec)
        (error: string)
        (backoff: System.TimeSpan)
        (failures: int)
        : unit =
        log.LogWarning(
            "compaction {JobId} of {DbPath} failed: {Sources} -> SR {Destination}: {Error}; these sources are not planned again for {Backoff} (failure {Failures})",
            Ulid.toString id,
            dbPath,
            describeSources spec,
            spec.Destination,
            error,
            backoff,
            failures
        )

    /// A running job was abandoned because its compactor stopped (Information).
    let jobAbandoned (log: ILogger) (dbPath: string) (id: Ulid) (spec: CompactionSpec) : unit =
        log.LogInformation(
            "compaction {JobId} of {DbPath} abandoned: {Sources} -> SR {Destination}",
            Ulid.toString id,
            dbPath,
            describeSources spec,
            spec.Destination
        )
