/// `slate --store <url> --path <db> watch [--interval <duration>] [--count N] [--until-l0 N] [--json]`:
/// follows the latest manifest and prints one line each time the LSM shape changes (L0 count and
/// bytes, sorted runs and their sizes, checkpoints), so a bulk load can be watched compacting.
module Slate.Cli.Watch

open System
open System.IO
open System.Text.Json
open System.Threading
open System.Threading.Tasks
open Slate
open Slate.Engine
open Slate.Model

let private usage =
    """usage: slate --store <url> --path <db> watch [--interval <duration>] [--count N] [--until-l0 N] [--json]

  --interval <duration>  how often the manifest is read (default 1s); e.g. 250ms, 2s
  --count N              stop after N lines
  --until-l0 N           stop once L0 holds at most N SSTs and at least one sorted run exists
  --json                 one JSON object per line

Prints a line when the database's shape changes; runs until Ctrl-C otherwise."""

/// The shape of one manifest version.
type Shape =
    {
        ManifestId: uint64
        L0Count: int
        L0Bytes: uint64
        /// (sorted-run id, SST count, estimated bytes), highest id first.
        SortedRuns: (uint32 * int * uint64) list
        Checkpoints: int
        WriterEpoch: uint64
        CompactorEpoch: uint64
    }

/// The shape of a manifest; sizes are SPEC §5.9's estimate (index offset + index length).
let shapeOf (id: uint64) (m: Manifest) : Shape =
    { ManifestId = id
      L0Count = m.L0.Length
      L0Bytes = m.L0 |> List.sumBy SizeTiered.sstSize
      SortedRuns =
        m.Compacted
        |> List.map (fun sr -> sr.Id, sr.Ssts.Length, sr.Ssts |> List.sumBy SizeTiered.sstSize)
      Checkpoints = m.Checkpoints.Length
      WriterEpoch = m.WriterEpoch
      CompactorEpoch = m.CompactorEpoch }

/// Whether two shapes differ in anything but the manifest id (a WAL-only update is no news).
let private changed (a: Shape) (b: Shape) : bool =
    { a with ManifestId = b.ManifestId } <> b

let private size (b: uint64) : string = CompactorCmd.size (int64 b)

/// One human line: time, manifest, L0, sorted runs (largest-first sizes), checkpoints.
let formatLine (now: DateTimeOffset) (s: Shape) : string =
    let total = s.SortedRuns |> List.sumBy (fun (_, _, b) -> b)

    let runs =
        match s.SortedRuns with
        | [] -> ""
        | rs ->
            rs
            |> List.map (fun (id, n, b) -> sprintf "SR %d: %d SST%s %s" id n (if n = 1 then "" else "s") (size b))
            |> fun parts -> " [" + String.Join(", ", parts) + "]"

    sprintf
        "%s  manifest %d  L0 %d (%s)  sorted runs %d (%s)%s  checkpoints %d"
        (now.ToString("HH:mm:ss.fff"))
        s.ManifestId
        s.L0Count
        (size s.L0Bytes)
        s.SortedRuns.Length
        (size total)
        runs
        s.Checkpoints

/// One JSON line.
let formatJson (now: DateTimeOffset) (s: Shape) : string =
    use ms = new MemoryStream()

    do
        use w = new Utf8JsonWriter(ms)
        w.WriteStartObject()
        w.WriteString("time", now.ToString("O"))
        w.WriteNumber("manifest_id", s.ManifestId)
        w.WriteNumber("writer_epoch", s.WriterEpoch)
        w.WriteNumber("compactor_epoch", s.CompactorEpoch)
        w.WriteNumber("l0", s.L0Count)
        w.WriteNumber("l0_bytes", s.L0Bytes)
        w.WriteStartArray "sorted_runs"

        for id, n, b in s.SortedRuns do
            w.WriteStartObject()
            w.WriteNumber("id", id)
            w.WriteNumber("ssts", n)
            w.WriteNumber("bytes", b)
            w.WriteEndObject()

        w.WriteEndArray()
        w.WriteNumber("checkpoints", s.Checkpoints)
        w.WriteEndObject()

    Text.Encoding.UTF8.GetString(ms.ToArray())

/// What makes the watch stop by itself.
type StopWhen =
    { Count: int option
      UntilL0: int option }

/// Polls until `ct` is cancelled or `stop` is met; prints the first shape and every change.
/// Returns 0; a database without a manifest raises `Data` ("failed to find latest manifest").
let run
    (store: IObjectStore)
    (dbPath: string)
    (interval: TimeSpan)
    (stop: StopWhen)
    (json: bool)
    (time: TimeProvider)
    (out: TextWriter)
    (ct: CancellationToken)
    : int =
    let manifests = ManifestStore(store, dbPath)
    let mutable last: Shape option = None
    let mutable printed = 0
    let mutable go = true

    let settled (s: Shape) =
        match stop.UntilL0 with
        | Some n -> s.L0Count <= n && not s.SortedRuns.IsEmpty
        | None -> false

    while go && not ct.IsCancellationRequested do
        match manifests.ReadLatestAsync(ct).GetAwaiter().GetResult() with
        | None -> raise (SlateException.Data(sprintf "failed to find latest manifest under %s/manifest" dbPath))
        | Some sm ->
            let s = shapeOf sm.Id sm.Manifest

            let news =
                match last with
                | None -> true
                | Some l -> changed l s

            if news then
                let now = time.GetUtcNow()
                out.WriteLine(if json then formatJson now s else formatLine now s)
                out.Flush()
                printed <- printed + 1
                last <- Some s

            let enough =
                match stop.Count with
                | Some n -> printed >= n
                | None -> false

            if enough || settled s then
                go <- false
            else
                try
                    Task.Delay(interval, time, ct).GetAwaiter().GetResult()
                with :? OperationCanceledException ->
                    go <- false

    0

let rec private parse
    (args: string list)
    (opts: Map<string, string>)
    (flags: Set<string>)
    (words: string list)
    : Result<Map<string, string> * Set<string> * string list, string> =
    match args with
    | [] -> Ok(opts, flags, List.rev words)
    | ("--store" | "--path" | "--interval" | "--count" | "--until-l0" as o) :: v :: rest ->
        parse rest (Map.add o v opts) flags words
    | "--json" :: rest -> parse rest opts (Set.add "--json" flags) words
    | ("-h" | "--help") :: _ -> Error ""
    | x :: _ when x.StartsWith "--" -> Error(sprintf "unknown or incomplete option %s" x)
    | x :: rest -> parse rest opts flags (x :: words)

let private positive (name: string) (v: string option) : Result<int option, string> =
    match v with
    | None -> Ok None
    | Some s ->
        match Int32.TryParse s with
        | true, n when n >= 0 -> Ok(Some n)
        | _ -> Error(sprintf "invalid %s '%s' (a whole number >= 0)" name s)

/// Handles the command line when its command word is `watch`; None for any other command.
let tryRunWith (argv: string[]) (out: TextWriter) (err: TextWriter) (ct: CancellationToken) : int option =
    match parse (List.ofArray argv) Map.empty Set.empty [] with
    | Ok(_, _, words) when words <> [ "watch" ] -> None
    | Error _ when not (Array.contains "watch" argv) -> None
    | Error msg ->
        if msg <> "" then
            err.WriteLine("slate: " + msg)

        err.WriteLine usage
        Some 2
    | Ok(opts, flags, _) ->
        let interval =
            match Map.tryFind "--interval" opts with
            | None -> Ok(TimeSpan.FromSeconds 1.0)
            | Some v ->
                match GcCommand.parseDuration v with
                | Some d when d > TimeSpan.Zero -> Ok d
                | _ -> Error(sprintf "invalid --interval '%s' (e.g. 250ms, 1s)" v)

        let parsed =
            match
                interval,
                positive "--count" (Map.tryFind "--count" opts),
                positive "--until-l0" (Map.tryFind "--until-l0" opts)
            with
            | Ok i, Ok c, Ok u -> Ok(i, { Count = c; UntilL0 = u })
            | Error e, _, _
            | _, Error e, _
            | _, _, Error e -> Error e

        match parsed, Map.tryFind "--store" opts, Map.tryFind "--path" opts with
        | Error e, _, _ ->
            err.WriteLine("slate: " + e)
            err.WriteLine usage
            Some 2
        | Ok(interval, stop), Some store, Some path ->
            Some(
                CliCommon.guarded err (fun () ->
                    run
                        (ObjectStore.Resolve(store).Inner)
                        path
                        interval
                        stop
                        (flags.Contains "--json")
                        TimeProvider.System
                        out
                        ct)
            )
        | Ok _, _, _ ->
            err.WriteLine "slate: --store and --path are required"
            err.WriteLine usage
            Some 2

/// `tryRunWith` on the console, stopped by Ctrl-C.
let tryRun (argv: string[]) : int option =
    if not (Array.contains "watch" argv) then
        None
    else
        use cts = new CancellationTokenSource()

        Console.CancelKeyPress.Add(fun e ->
            e.Cancel <- true
            cts.Cancel())

        tryRunWith argv Console.Out Console.Error cts.Token
