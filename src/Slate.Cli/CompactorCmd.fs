/// `slate compactor`: a standalone compactor until Ctrl-C, printing every finished compaction.
module Slate.Cli.CompactorCmd

open System
open System.IO
open System.Threading
open Microsoft.Extensions.Logging
open Slate
open Slate.Engine
open Slate.Model

/// A byte count for people: B, KiB, MiB or GiB.
let size (b: int64) : string =
    if b >= (1L <<< 30) then
        sprintf "%.2f GiB" (float b / 1073741824.0)
    elif b >= (1L <<< 20) then
        sprintf "%.1f MiB" (float b / 1048576.0)
    elif b >= 1024L then
        sprintf "%.1f KiB" (float b / 1024.0)
    else
        sprintf "%d B" b

let private describe (r: CompactionReport) : string =
    let l0 =
        match r.L0Sources with
        | [] -> []
        | ids -> [ sprintf "%d L0 (%s..%s)" ids.Length (Ulid.toString ids.Head) (Ulid.toString (List.last ids)) ]

    let srs =
        match r.SortedRunSources with
        | [] -> []
        | ids -> [ "SR " + String.Join(",", ids) ]

    String.Join(" + ", l0 @ srs)

/// One line per finished job on `out` (JSON object per line with `json`).
let private print (out: TextWriter) (json: bool) (r: CompactionReport) : unit =
    let now = DateTimeOffset.UtcNow.ToString("HH:mm:ss.fff")

    let line =
        if json then
            let err =
                match r.Error with
                | Some e -> Text.Json.JsonSerializer.Serialize e
                | None -> "null"

            sprintf
                """{"time":"%s","job":"%s","l0_sources":%d,"sr_sources":[%s],"destination":%d,"bytes_in":%d,"bytes_out":%d,"output_ssts":%d,"l0":%d,"sorted_runs":%d,"error":%s}"""
                now
                (Ulid.toString r.JobId)
                r.L0Sources.Length
                (String.Join(",", r.SortedRunSources))
                r.Destination
                r.BytesIn
                r.BytesOut
                r.OutputSsts
                r.L0Count
                r.SortedRunCount
                err
        else
            match r.Error with
            | None ->
                sprintf
                    "%s  %s -> SR %d  in %s out %s (%d SSTs)  now L0 %d, SRs %d"
                    now
                    (describe r)
                    r.Destination
                    (size r.BytesIn)
                    (size r.BytesOut)
                    r.OutputSsts
                    r.L0Count
                    r.SortedRunCount
            | Some e -> sprintf "%s  %s -> SR %d  FAILED: %s" now (describe r) r.Destination e

    lock out (fun () ->
        out.WriteLine line
        out.Flush())

/// Compacts until `ct` is cancelled, one line per finished job on `out`, the log (categories
/// Slate.Compactor, Slate.Db) to `loggers`; 0 on a normal stop.
let run
    (store: IObjectStore)
    (path: string)
    (json: bool)
    (mergeOp: MergeOperator option)
    (out: TextWriter)
    (loggers: ILoggerFactory)
    (ct: CancellationToken)
    : int =
    let options =
        { DbOptions.defaults with
            MergeOperator = mergeOp
            LoggerFactory = loggers }

    if not json then
        out.WriteLine(sprintf "compacting %s (Ctrl-C to stop)" path)

    (CompactorRunner.runWithAsync store path CompactorSettings.defaults options (print out json) ct)
        .GetAwaiter()
        .GetResult()

    0
