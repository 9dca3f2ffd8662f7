/// `slate --store <url> --path <db> bench [--records N] [--reads N] [--durable N] [--value-size B] [--json]`:
/// Slate's own workloads through the public client on any store (a local folder, S3, Azure): a
/// batched load, cached point reads, one-writer durable puts and a full scan. The comparison with
/// RocksDB and ZoneTree lives in `bench/Slate.Bench` (BENCHMARKS.md).
module Slate.Cli.Bench

open System
open System.Diagnostics
open System.IO
open System.Text
open System.Text.Json
open System.Threading
open Slate

let private usage =
    """usage: slate --store <url> --path <db> bench [--records N] [--reads N] [--durable N] [--value-size B] [--seed S] [--json]

  --records N      keys loaded in batches of 100 (default 100000)
  --reads N        random point reads of loaded keys (default = records)
  --durable N      single puts, each awaiting durability (default 500)
  --value-size B   value bytes (default 100)
  --seed S         key and value generator seed (default 1)
  --json           one JSON object per phase

The path must not hold a database yet (bench never writes into existing data). Progress goes to
stderr, results to stdout."""

/// Settings of one run.
type BenchArgs =
    { Records: int
      Reads: int
      Durable: int
      ValueSize: int
      Seed: int }

/// The result of one phase: operations, elapsed time and per-operation latency percentiles.
type Phase =
    {
        Name: string
        Ops: int
        Seconds: float
        /// Latency percentiles in microseconds: p50, p99, max (per batch for the load).
        P50: float
        P99: float
        Max: float
    }

/// Nearest-rank percentile of ascending values (0 for none).
let private percentile (sorted: float[]) (p: float) : float =
    if sorted.Length = 0 then
        0.0
    else
        let rank = int (Math.Ceiling(p * float sorted.Length)) // 1-based
        sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)]

/// A phase from its latencies (ticks of `Stopwatch`) and total time.
let phaseOf (name: string) (ops: int) (elapsed: TimeSpan) (latencies: int64 seq) : Phase =
    let us =
        latencies
        |> Seq.map (fun t -> float t * 1_000_000.0 / float Stopwatch.Frequency)
        |> Array.ofSeq
        |> Array.sort

    { Name = name
      Ops = ops
      Seconds = elapsed.TotalSeconds
      P50 = percentile us 0.50
      P99 = percentile us 0.99
      Max = (if us.Length = 0 then 0.0 else us[us.Length - 1]) }

/// Progress on stderr, at most once a second.
type private Progress(err: TextWriter, name: string, total: int) =
    let sw = Stopwatch.StartNew()
    let mutable last = 0L

    member _.Report(done': int) =
        if sw.ElapsedMilliseconds - last >= 1000L then
            last <- sw.ElapsedMilliseconds

            err.WriteLine(
                sprintf "bench: %s %d/%d (%.0f%%)" name done' total (100.0 * float done' / float (max 1 total))
            )

let private keyOf (i: int) : byte[] =
    // spread over the key space so the load is random, not sequential
    let h = uint32 i * 2654435761u
    Encoding.ASCII.GetBytes(sprintf "key%08x%08d" h i)

let private run
    (client: SlateClient)
    (a: BenchArgs)
    (err: TextWriter)
    (ct: CancellationToken)
    : Threading.Tasks.Task<Phase list> =
    task {
        let rnd = Random a.Seed

        let value () =
            let v = Array.zeroCreate<byte> a.ValueSize
            rnd.NextBytes v
            v

        // 1. load: batches of 100, not awaiting durability
        let batches = (a.Records + 99) / 100
        let lat = ResizeArray<int64>(batches)
        let progress = Progress(err, "load", a.Records)
        let sw = Stopwatch.StartNew()

        for b in 0 .. batches - 1 do
            let batch = WriteBatch()

            for i in b * 100 .. min a.Records ((b + 1) * 100) - 1 do
                batch.Put(ReadOnlyMemory(keyOf i), ReadOnlyMemory(value ())) |> ignore

            let t0 = Stopwatch.GetTimestamp()
            let! _ = client.WriteAsync(batch, ct)
            lat.Add(Stopwatch.GetTimestamp() - t0)
            progress.Report((b + 1) * 100 |> min a.Records)

        do! client.FlushAsync(FlushType.MemTable, ct)
        let load = phaseOf "load" a.Records sw.Elapsed lat

        // 2. point reads of random loaded keys (every one must be found)
        let lat = ResizeArray<int64>(a.Reads)
        let progress = Progress(err, "reads", a.Reads)
        let sw = Stopwatch.StartNew()

        for n in 0 .. a.Reads - 1 do
            let i = rnd.Next a.Records
            let t0 = Stopwatch.GetTimestamp()
            let! v = client.GetAsync(ReadOnlyMemory(keyOf i), null, ct)
            lat.Add(Stopwatch.GetTimestamp() - t0)

            if isNull v then
                raise (
                    SlateException.Data(sprintf "bench: loaded key %s is missing" (Encoding.ASCII.GetString(keyOf i)))
                )

            progress.Report(n + 1)

        let reads = phaseOf "reads" a.Reads sw.Elapsed lat

        // 3. one writer, each put awaiting durability
        let lat = ResizeArray<int64>(a.Durable)
        let progress = Progress(err, "durable puts", a.Durable)
        let sw = Stopwatch.StartNew()

        for n in 0 .. a.Durable - 1 do
            let t0 = Stopwatch.GetTimestamp()
            let! h = client.PutAsync(ReadOnlyMemory(keyOf (a.Records + n)), ReadOnlyMemory(value ()), null, ct)
            do! h.AwaitDurableAsync ct
            lat.Add(Stopwatch.GetTimestamp() - t0)
            progress.Report(n + 1)

        let durable = phaseOf "durable puts" a.Durable sw.Elapsed lat

        // 4. a full scan, counting rows
        let sw = Stopwatch.StartNew()
        let it = client.Scan(KeyRange.All, null)
        let mutable rows = 0
        let mutable go = true

        while go do
            let! b = it.NextBatchAsync(1000, ct)

            if b.Count = 0 then go <- false else rows <- rows + b.Count

        let expected = a.Records + a.Durable

        if rows <> expected then
            raise (SlateException.Data(sprintf "bench: the scan returned %d rows, %d were written" rows expected))

        let scan = phaseOf "scan" rows sw.Elapsed []
        return [ load; reads; durable; scan ]
    }

let private line (json: bool) (p: Phase) : string =
    let rate = float p.Ops / max p.Seconds 1e-9

    if json then
        use ms = new MemoryStream()

        do
            use w = new Utf8JsonWriter(ms)
            w.WriteStartObject()
            w.WriteString("phase", p.Name)
            w.WriteNumber("ops", p.Ops)
            w.WriteNumber("seconds", Math.Round(p.Seconds, 3))
            w.WriteNumber("ops_per_s", Math.Round(rate, 1))
            w.WriteNumber("p50_us", Math.Round(p.P50, 1))
            w.WriteNumber("p99_us", Math.Round(p.P99, 1))
            w.WriteNumber("max_us", Math.Round(p.Max, 1))
            w.WriteEndObject()

        Encoding.UTF8.GetString(ms.ToArray())
    else
        let lat =
            if p.Name = "scan" then
                ""
            else
                sprintf
                    "  p50 %.1f µs  p99 %.1f µs  max %.1f µs%s"
                    p.P50
                    p.P99
                    p.Max
                    (if p.Name = "load" then " (per batch of 100)" else "")

        sprintf "%-13s %9d ops in %7.2f s  %11.0f ops/s%s" p.Name p.Ops p.Seconds rate lat

/// Runs the workloads on a fresh database at `path`; 0 on success. Refuses (Invalid) a path that
/// already holds a database.
let runOn
    (store: ObjectStore)
    (path: string)
    (a: BenchArgs)
    (json: bool)
    (out: TextWriter)
    (err: TextWriter)
    (ct: CancellationToken)
    : int =
    let existing =
        Slate.Engine.ManifestStore(store.Inner, path).ReadLatestAsync(ct).GetAwaiter().GetResult()

    if existing.IsSome then
        raise (
            SlateException.Invalid(
                sprintf "bench needs an empty path: %s already holds a database (manifest %d)" path existing.Value.Id
            )
        )

    // explicit flushes only; the embedded compactor runs as it would for a user
    let options = SlateOptions(FlushInterval = Nullable())

    let client =
        SlateClient.OpenAsync(path, store, options, ct).GetAwaiter().GetResult()

    try
        let phases = (run client a err ct).GetAwaiter().GetResult()

        if not json then
            out.WriteLine(
                sprintf
                    "bench of %s: %d records, %d-byte values, %d reads, %d durable puts"
                    path
                    a.Records
                    a.ValueSize
                    a.Reads
                    a.Durable
            )

        for p in phases do
            out.WriteLine(line json p)

        0
    finally
        client.CloseAsync(null, CancellationToken.None).GetAwaiter().GetResult()

let rec private parse (args: string list) (opts: Map<string, string>) (json: bool) (words: string list) =
    match args with
    | [] -> Ok(opts, json, List.rev words)
    | ("--store" | "--path" | "--records" | "--reads" | "--durable" | "--value-size" | "--seed" as o) :: v :: rest ->
        parse rest (Map.add o v opts) json words
    | "--json" :: rest -> parse rest opts true words
    | ("-h" | "--help") :: _ -> Error ""
    | x :: _ when x.StartsWith "--" -> Error(sprintf "unknown or incomplete option %s" x)
    | x :: rest -> parse rest opts json (x :: words)

/// Handles the command line when its command word is `bench`; None for any other command.
let tryRunWith (argv: string[]) (out: TextWriter) (err: TextWriter) (ct: CancellationToken) : int option =
    match parse (List.ofArray argv) Map.empty false [] with
    | Ok(_, _, words) when words <> [ "bench" ] -> None
    | Error _ when not (Array.contains "bench" argv) -> None
    | Error msg ->
        if msg <> "" then
            err.WriteLine("slate: " + msg)

        err.WriteLine usage
        Some 2
    | Ok(opts, json, _) ->
        let num (name: string) (dflt: int) (least: int) =
            match Map.tryFind name opts with
            | None -> Ok dflt
            | Some s ->
                match Int32.TryParse s with
                | true, n when n >= least -> Ok n
                | _ -> Error(sprintf "invalid %s '%s' (a whole number >= %d)" name s least)

        let args =
            match num "--records" 100_000 1, num "--durable" 500 1, num "--value-size" 100 0, num "--seed" 1 0 with
            | Ok r, Ok d, Ok v, Ok s ->
                num "--reads" r 1
                |> Result.map (fun reads ->
                    { Records = r
                      Reads = reads
                      Durable = d
                      ValueSize = v
                      Seed = s })
            | Error e, _, _, _
            | _, Error e, _, _
            | _, _, Error e, _
            | _, _, _, Error e -> Error e

        match args, Map.tryFind "--store" opts, Map.tryFind "--path" opts with
        | Error e, _, _ ->
            err.WriteLine("slate: " + e)
            err.WriteLine usage
            Some 2
        | Ok a, Some store, Some path ->
            Some(CliCommon.guarded err (fun () -> runOn (ObjectStore.Resolve store) path a json out err ct))
        | Ok _, _, _ ->
            err.WriteLine "slate: --store and --path are required"
            err.WriteLine usage
            Some 2

/// `tryRunWith` on the console.
let tryRun (argv: string[]) : int option =
    if not (Array.contains "bench" argv) then
        None
    else
        tryRunWith argv Console.Out Console.Error CancellationToken.None
