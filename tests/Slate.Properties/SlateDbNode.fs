/// Running the real SlateDB 0.12.1 through its Node binding `@slatedb/uniffi` (installed once per
/// run with npm into `SLATE_NPM_CACHE`, default `~/.cache/slate-npm`), and comparing contents key by
/// key. Shared by every interop test (InteropTests and the reader, compactor and GC tests).
/// Without node/npm the tests are skipped, or fail when `CI=true`.
module Slate.Properties.SlateDbNode

open System
open System.Collections.Generic
open System.Diagnostics
open System.IO
open System.Text
open System.Text.Json
open System.Threading
open System.Threading.Tasks
open Expecto
open Slate.Model
open Slate.Engine
open Slate.Properties.TestUtil

// ------------------------------------------------------------------ running node

let bindingVersion = "0.12.1"
let private ct = CancellationToken.None

/// The folder holding Slate.sln, found above the test binaries.
let repoRoot () : string =
    let rec up (d: DirectoryInfo) =
        if isNull d then
            failwithf "no Slate.sln above %s" AppContext.BaseDirectory
        elif File.Exists(Path.Combine(d.FullName, "Slate.sln")) then
            d.FullName
        else
            up d.Parent

    up (DirectoryInfo AppContext.BaseDirectory)

let writerScript () =
    Path.Combine(repoRoot (), "tests", "Slate.Properties", "interop", "slatedb-write.mjs")

let readerScript () =
    Path.Combine(sharedDir (), "compat", "read-with-slatedb.mjs")

type ProcResult = { Code: int; Out: string; Err: string }

let clip (s: string) =
    if s.Length <= 300 then s else s.Substring(0, 300) + "…"

/// Runs a program to completion (killed after `timeout`), capturing its output.
let run (file: string) (args: string list) (env: (string * string) list) (input: string option) timeout =
    let psi =
        ProcessStartInfo(
            file,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = input.IsSome,
            UseShellExecute = false
        )

    args |> List.iter psi.ArgumentList.Add

    for k, v in env do
        psi.Environment[k] <- v

    use p = Process.Start psi
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEndAsync()

    match input with
    | Some s ->
        p.StandardInput.Write s
        p.StandardInput.Close()
    | None -> ()

    if not (p.WaitForExit(timeout: TimeSpan)) then
        (try
            p.Kill true
         with _ ->
             ())

        failwithf "%s %s: no exit after %.0f s (killed)" file (clip (String.Join(" ", args))) timeout.TotalSeconds

    p.WaitForExit()

    { Code = p.ExitCode
      Out = out.Result
      Err = err.Result }

let toolWorks (name: string) =
    try
        (run name [ "--version" ] [] None (TimeSpan.FromSeconds 60.0)).Code = 0
    with _ ->
        false

let installedVersion (dir: string) : string option =
    let pj = Path.Combine(dir, "package.json")

    try
        use doc = JsonDocument.Parse(File.ReadAllText pj)
        let r = doc.RootElement

        if r.GetProperty("name").GetString() = "@slatedb/uniffi" then
            Some(r.GetProperty("version").GetString())
        else
            None
    with _ ->
        None

/// Holds an exclusive lock file (across processes) while `f` runs.
let withFileLock (path: string) (f: unit -> 'a) : 'a =
    let deadline = DateTime.UtcNow.AddMinutes 10.0

    let rec acquire () =
        try
            new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None)
        with :? IOException when DateTime.UtcNow < deadline ->
            Thread.Sleep 250
            acquire ()

    use _held = acquire ()
    f ()

/// The installed binding folder, or why there is none. Installs with npm once per run.
let binding: Lazy<Result<string, string>> =
    lazy
        (let cache =
            match Environment.GetEnvironmentVariable "SLATE_NPM_CACHE" with
            | null
            | "" -> Path.Combine(Environment.GetFolderPath Environment.SpecialFolder.UserProfile, ".cache", "slate-npm")
            | d -> d

         let dir = Path.Combine(cache, "node_modules", "@slatedb", "uniffi")

         let ready () =
             installedVersion dir = Some bindingVersion

         let result =
             if not (toolWorks "node") then
                 Error "node is not installed (Node.js 20+ is needed)"
             elif ready () then
                 Ok dir
             elif not (toolWorks "npm") then
                 Error "npm is not installed"
             else
                 Directory.CreateDirectory cache |> ignore

                 withFileLock (Path.Combine(cache, ".slatedb-uniffi.lock")) (fun () ->
                     if ready () then
                         Ok dir
                     else
                         let args =
                             [ "install"
                               "--prefix"
                               cache
                               "--no-audit"
                               "--no-fund"
                               "@slatedb/uniffi@" + bindingVersion ]

                         let r = run "npm" args [] None (TimeSpan.FromMinutes 5.0)

                         if r.Code = 0 && ready () then
                             Ok dir
                         else
                             Error(
                                 sprintf
                                     "npm install @slatedb/uniffi@%s --prefix %s failed (exit %d): %s"
                                     bindingVersion
                                     cache
                                     r.Code
                                     (clip (r.Err + r.Out))
                             ))

         match result with
         | Error reason -> eprintfn "[interop] SlateDB interop tests cannot run: %s" reason
         | Ok _ -> ()

         result)

/// The binding folder; skips the test (fails it when CI=true) when Node or the binding is missing.
let requireBinding () : string =
    match binding.Force() with
    | Ok d -> d
    | Error reason when
        String.Equals(Environment.GetEnvironmentVariable "CI", "true", StringComparison.OrdinalIgnoreCase)
        ->
        failtestf "SlateDB interop needs Node.js and @slatedb/uniffi@%s: %s" bindingVersion reason
    | Error reason -> skiptestf "SlateDB interop skipped: %s" reason

/// Runs a Node script with extra environment variables (e.g. an S3 endpoint for object_store).
let nodeWithEnv (env: (string * string) list) (script: string) (args: string list) (input: string option) : string =
    let dir = requireBinding ()

    let r =
        run "node" (script :: args) (("SLATEDB_UNIFFI_DIR", dir) :: env) input (TimeSpan.FromSeconds 120.0)

    if r.Code <> 0 then
        failtestf
            "node %s %s failed (exit %d):\n%s"
            (Path.GetFileName script)
            (clip (String.Join(" ", args)))
            r.Code
            r.Err

    r.Out

/// Runs a Node script against the binding; fails the test with its stderr on a non-zero exit.
let node (script: string) (args: string list) (input: string option) : string = nodeWithEnv [] script args input

/// Several `read-with-slatedb.mjs` runs in parallel (each copies the database first).
let readAll (root: string) (dbPath: string) (argSets: string list list) : string list =
    argSets
    |> List.map (fun extra -> Task.Run(fun () -> node (readerScript ()) (root :: dbPath :: extra) None))
    |> Array.ofList
    |> Task.WhenAll
    |> fun t -> t.GetAwaiter().GetResult() |> List.ofArray

let await (what: string) (t: Task<'a>) : 'a =
    try
        t.WaitAsync(TimeSpan.FromSeconds 90.0).GetAwaiter().GetResult()
    with :? TimeoutException ->
        failtestf "%s: no completion after 90 s" what

let awaitUnit (what: string) (t: Task) : unit = await what (task { do! t })

// ------------------------------------------------------------------ entries and comparison

/// One live key as a reader returns it (hex; metadata zero / None when not reported).
type Entry =
    { Key: string
      Value: string
      Seq: uint64
      CreateTs: int64
      ExpireTs: int64 option }

/// Which fields a comparison covers besides key and value.
type Check =
    | Values
    | Expiry
    | Full

let jsonInt (r: JsonElement) (name: string) : int64 option =
    match r.TryGetProperty name with
    | true, v when v.ValueKind = JsonValueKind.Number -> Some(v.GetInt64())
    | true, v when v.ValueKind = JsonValueKind.String -> Some(Int64.Parse(v.GetString()))
    | _ -> None

let jsonLines (text: string) : JsonElement list =
    [ for line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries) -> JsonDocument.Parse(line).RootElement ]

/// Parses the scan output of read-with-slatedb.mjs.
let parseScan (text: string) : Entry list =
    [ for r in jsonLines text ->
          { Key = r.GetProperty("key_hex").GetString()
            Value = r.GetProperty("value_hex").GetString()
            Seq = jsonInt r "seq" |> Option.map uint64 |> Option.defaultValue 0UL
            CreateTs = jsonInt r "create_ts" |> Option.defaultValue 0L
            ExpireTs = jsonInt r "expire_ts" } ]

/// Parses `--get` output: key → value (None = not found).
let parseGets (text: string) : (string * string option) list =
    [ for r in jsonLines text ->
          let v = r.GetProperty "value_hex"

          r.GetProperty("key_hex").GetString(),
          (if v.ValueKind = JsonValueKind.Null then
               None
           else
               Some(v.GetString())) ]

let ofRow (r: RowEntry) : Entry =
    { Key = Bytes.toHex r.Key
      Value =
        match r.Value with
        | RowValue.Value v -> Bytes.toHex v
        | other -> failtestf "a resolved row of %s is not a value: %A" (Bytes.toHex r.Key) other
      Seq = r.Seq
      CreateTs = defaultArg r.CreateTs 0L
      ExpireTs = r.ExpireTs }

let short (h: string) =
    if h.Length <= 64 then
        "0x" + h
    else
        sprintf "0x%s… (%d bytes)" (h.Substring(0, 64)) (h.Length / 2)

let show (check: Check) (e: Entry) =
    match check with
    | Values -> sprintf "%s = %s" (short e.Key) (short e.Value)
    | Expiry -> sprintf "%s = %s expire_ts=%A" (short e.Key) (short e.Value) e.ExpireTs
    | Full ->
        sprintf "%s = %s seq=%d create_ts=%d expire_ts=%A" (short e.Key) (short e.Value) e.Seq e.CreateTs e.ExpireTs

/// Exact equality of two key-ordered contents; fails naming the first differing key.
let expectSame (label: string) (check: Check) (expected: Entry list) (actual: Entry list) =
    let same (a: Entry) (b: Entry) =
        a.Value = b.Value
        && (check = Values || a.ExpireTs = b.ExpireTs)
        && (check <> Full || (a.Seq = b.Seq && a.CreateTs = b.CreateTs))

    let counts = sprintf "(%d keys expected, %d read)" expected.Length actual.Length

    let rec walk (i: int) (e: Entry list) (a: Entry list) =
        match e, a with
        | [], [] -> ()
        | x :: _, [] ->
            failtestf "%s: first difference at #%d: missing %s; nothing more was read %s" label i (show check x) counts
        | [], y :: _ -> failtestf "%s: first difference at #%d: unexpected %s %s" label i (show check y) counts
        | x :: xs, y :: ys when x.Key = y.Key ->
            if same x y then
                walk (i + 1) xs ys
            else
                failtestf
                    "%s: first difference at #%d, key %s:\n  expected %s\n  read     %s %s"
                    label
                    i
                    (short x.Key)
                    (show check x)
                    (show check y)
                    counts
        | x :: _, y :: _ when String.CompareOrdinal(x.Key, y.Key) < 0 ->
            failtestf
                "%s: first difference at #%d: missing %s (read %s instead) %s"
                label
                i
                (show check x)
                (show check y)
                counts
        | x :: _, y :: _ ->
            failtestf
                "%s: first difference at #%d: unexpected %s (expected %s next) %s"
                label
                i
                (show check y)
                (show check x)
                counts

    walk 0 expected actual

// ------------------------------------------------------------------ writer plans (slatedb-write.mjs)

/// One write of a `slatedb-write.mjs` plan.
[<RequireQualifiedAccess>]
type PlanWrite =
    | Put of key: byte[] * value: byte[] * ttlMs: int64 option
    | Delete of key: byte[]
    | Merge of key: byte[] * value: byte[]

/// One step of a `slatedb-write.mjs` plan.
[<RequireQualifiedAccess>]
type PlanStep =
    | Write of PlanWrite
    | Batch of PlanWrite list
    /// "wal" or "memtable".
    | Flush of kind: string
    /// Holds SlateDB open until the (local) file exists; an error after `timeoutMs`.
    | WaitFile of path: string * timeoutMs: int

/// A `slatedb-write.mjs` plan: the concat merge operator or none, Settings overrides (name, raw
/// JSON value; dotted names reach nested fields), and the steps.
type Plan =
    { ConcatMerge: bool
      Settings: (string * string) list
      Steps: PlanStep list }

/// The plan as the JSON `slatedb-write.mjs` reads.
let planToJson (plan: Plan) : string =
    use ms = new MemoryStream()

    (use w = new Utf8JsonWriter(ms)

     let write (o: PlanWrite) =
         w.WriteStartObject()

         match o with
         | PlanWrite.Put(k, v, ttl) ->
             w.WriteString("op", "put")
             w.WriteString("key", Bytes.toHex k)
             w.WriteString("value", Bytes.toHex v)
             ttl |> Option.iter (fun t -> w.WriteNumber("ttl_ms", t))
         | PlanWrite.Delete k ->
             w.WriteString("op", "delete")
             w.WriteString("key", Bytes.toHex k)
         | PlanWrite.Merge(k, v) ->
             w.WriteString("op", "merge")
             w.WriteString("key", Bytes.toHex k)
             w.WriteString("value", Bytes.toHex v)

         w.WriteEndObject()

     w.WriteStartObject()

     if plan.ConcatMerge then
         w.WriteString("merge", "concat")

     w.WriteStartObject "settings"

     for name, json in plan.Settings do
         w.WritePropertyName name
         w.WriteRawValue json

     w.WriteEndObject()
     w.WriteStartArray "steps"

     for s in plan.Steps do
         match s with
         | PlanStep.Write o -> write o
         | PlanStep.Batch ops ->
             w.WriteStartObject()
             w.WriteString("op", "batch")
             w.WriteStartArray "ops"
             List.iter write ops
             w.WriteEndArray()
             w.WriteEndObject()
         | PlanStep.Flush kind ->
             w.WriteStartObject()
             w.WriteString("op", "flush")
             w.WriteString("kind", kind)
             w.WriteEndObject()
         | PlanStep.WaitFile(path, timeoutMs) ->
             w.WriteStartObject()
             w.WriteString("op", "wait_file")
             w.WriteString("path", path)
             w.WriteNumber("timeout_ms", timeoutMs)
             w.WriteEndObject()

     w.WriteEndArray()
     w.WriteEndObject())

    Encoding.UTF8.GetString(ms.ToArray())

/// Number of steps that write (each takes one sequence number in SlateDB).
let planWrites (plan: Plan) : int =
    plan.Steps
    |> List.sumBy (function
        | PlanStep.Write _
        | PlanStep.Batch _ -> 1
        | PlanStep.Flush _
        | PlanStep.WaitFile _ -> 0)

/// A `slatedb-write.mjs` process running in the background.
[<NoComparison; NoEquality>]
type BackgroundWriter =
    {
        Process: Process
        /// Completes when the process exits (or fails when it is still running after the timeout).
        Result: Task<ProcResult>
    }

/// Kills a background writer's process tree (a crash of SlateDB) and waits for it to exit.
let killWriter (w: BackgroundWriter) : unit =
    if not w.Process.HasExited then
        w.Process.Kill true

    w.Result.ContinueWith(fun (_: Task<ProcResult>) -> ()).Wait(TimeSpan.FromSeconds 60.0)
    |> ignore

/// Starts `slatedb-write.mjs` on a local database in the background (killed after `timeout`);
/// skips the test (fails on CI) when the binding is missing. Finish with `finishWriter`.
let startWriter (root: string) (dbPath: string) (plan: Plan) (timeout: TimeSpan) : BackgroundWriter =
    let dir = requireBinding ()

    let psi =
        ProcessStartInfo(
            "node",
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false
        )

    [ writerScript (); root; dbPath ] |> List.iter psi.ArgumentList.Add
    psi.Environment["SLATEDB_UNIFFI_DIR"] <- dir
    let p = Process.Start psi
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEndAsync()

    let result =
        task {
            do! p.StandardInput.WriteAsync(planToJson plan)
            p.StandardInput.Close()

            try
                do! p.WaitForExitAsync().WaitAsync(timeout)
            with :? TimeoutException ->
                p.Kill true
                failwithf "slatedb-write.mjs: no exit after %.0f s (killed)" timeout.TotalSeconds

            let! o = out
            let! e = err

            return { Code = p.ExitCode; Out = o; Err = e }
        }

    { Process = p; Result = result }

/// Polls `cond` (every `pollMs`) while a background writer runs; fails with the writer's stderr when
/// it exits first, or naming `what` after `seconds`.
let waitWhileWriting (writer: BackgroundWriter) (pollMs: int) (seconds: float) (what: string) (cond: unit -> bool) =
    let sw = Stopwatch.StartNew()

    let rec loop () =
        if cond () then
            ()
        elif writer.Result.IsCompleted then
            let r = writer.Result.GetAwaiter().GetResult()
            failtestf "slatedb-write.mjs exited (%d) before %s:\n%s" r.Code what r.Err
        elif sw.Elapsed.TotalSeconds > seconds then
            failtestf "%s did not happen within %.0f s" what seconds
        else
            Thread.Sleep pollMs
            loop ()

    loop ()

/// Waits for a background writer; fails the test with its stderr on a non-zero exit. Returns stdout.
let finishWriter (writer: BackgroundWriter) : string =
    let r = await "slatedb-write.mjs" writer.Result

    if r.Code <> 0 then
        failtestf "slatedb-write.mjs failed (exit %d):\n%s" r.Code r.Err

    r.Out

/// Creates `marker` (releasing a writer blocked in `wait_file`) and waits up to 60 s for the
/// writer's process to end, without inspecting its outcome: for `finally` blocks, so that a failed
/// test leaves no SlateDB process writing into a folder being deleted.
let releaseWriter (marker: string) (writer: BackgroundWriter) : unit =
    if not (File.Exists marker) then
        File.WriteAllText(marker, "")

    writer.Result.ContinueWith(fun (_: Task<ProcResult>) -> ()).Wait(TimeSpan.FromSeconds 60.0)
    |> ignore

    writer.Process.Dispose()
