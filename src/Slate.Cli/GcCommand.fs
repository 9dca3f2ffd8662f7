/// `slate --store <url> --path <db> gc [--dry-run] [--min-age <duration>] [--wal-fences] [--json]`:
/// one garbage-collection pass (SPEC §5.12) and its report.
module Slate.Cli.GcCommand

open System
open System.Globalization
open System.IO
open System.Text.Json
open System.Threading
open Microsoft.Extensions.Logging
open Slate
open Slate.Model
open Slate.Engine

let usage =
    """usage: slate --store <url> --path <db> gc [--dry-run] [--min-age <duration>] [--wal-fences] [--json]
                                          [--log-level <level>]

  --dry-run             report what would be deleted; delete nothing
  --min-age <duration>  nothing younger is deleted (default 5m); e.g. 300s, 5m, 1h, 250ms, 0
  --wal-fences          also delete WAL fence objects
  --json                print the report as one JSON object
  --log-level <level>   trace|debug|information|warning|error|none (default information);
                        the log goes to standard error"""

type private GcArgs =
    { Store: string option
      Path: string option
      Command: string option
      DryRun: bool
      MinAge: TimeSpan option
      WalFences: bool
      Json: bool
      LogLevel: LogLevel }

/// Parses a duration: a number with a unit (ms, s, m, h, d), a bare number of seconds, or a
/// .NET time span (`00:05:00`).
let parseDuration (s: string) : TimeSpan option =
    let num (t: string) =
        match Double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture) with
        | true, v when v >= 0.0 && not (Double.IsInfinity v) -> Some v
        | _ -> None

    let withUnit (suffix: string) (f: float -> TimeSpan) =
        if s.EndsWith(suffix, StringComparison.OrdinalIgnoreCase) then
            num (s.Substring(0, s.Length - suffix.Length)) |> Option.map f
        else
            None

    [ withUnit "ms" TimeSpan.FromMilliseconds
      withUnit "s" TimeSpan.FromSeconds
      withUnit "m" TimeSpan.FromMinutes
      withUnit "h" TimeSpan.FromHours
      withUnit "d" TimeSpan.FromDays
      num s |> Option.map TimeSpan.FromSeconds
      (match TimeSpan.TryParse(s, CultureInfo.InvariantCulture) with
       | true, t when t >= TimeSpan.Zero -> Some t
       | _ -> None) ]
    |> List.tryPick id

let rec private parse (a: GcArgs) (args: string list) : Result<GcArgs, string> =
    match args with
    | [] -> Ok a
    | "--store" :: v :: rest -> parse { a with Store = Some v } rest
    | "--path" :: v :: rest -> parse { a with Path = Some v } rest
    | "--dry-run" :: rest -> parse { a with DryRun = true } rest
    | "--wal-fences" :: rest -> parse { a with WalFences = true } rest
    | "--json" :: rest -> parse { a with Json = true } rest
    | "--min-age" :: v :: rest ->
        match parseDuration v with
        | Some d -> parse { a with MinAge = Some d } rest
        | None -> Error(sprintf "invalid --min-age '%s' (e.g. 300s, 5m, 1h)" v)
    | "--log-level" :: v :: rest ->
        match CliLogging.parseLevel v with
        | Some l -> parse { a with LogLevel = l } rest
        | None -> Error(CliLogging.invalidLevel v)
    | ("-h" | "--help") :: _ -> Error ""
    | x :: _ when x.StartsWith "--" -> Error(sprintf "unknown or incomplete option %s" x)
    | x :: rest when a.Command.IsNone -> parse { a with Command = Some x } rest
    | x :: _ -> Error(sprintf "unexpected argument %s" x)

/// The command word of a command line (the first argument that is not an option or its value).
let private commandOf (argv: string list) : string option =
    let rec go args =
        match args with
        | [] -> None
        | ("--store" | "--path" | "--min-age" | "--merge-operator" | "--log-level") :: _ :: rest -> go rest
        | (x: string) :: rest when x.StartsWith "-" -> go rest
        | x :: _ -> Some x

    go argv

let private writeJson (out: TextWriter) (r: GcReport) =
    use ms = new MemoryStream()

    do
        use w = new Utf8JsonWriter(ms)
        w.WriteStartObject()
        w.WriteBoolean("dry_run", r.DryRun)
        w.WriteNumber("manifest_id", r.ManifestId)

        w.WriteStartArray "expired_checkpoints"

        for c in r.ExpiredCheckpoints do
            w.WriteStringValue(Uuid.toString c)

        w.WriteEndArray()

        let opt (name: string) (v: uint64 option) =
            match v with
            | Some v -> w.WriteNumber(name, v)
            | None -> w.WriteNull name

        opt "manifest_boundary" r.ManifestBoundary
        opt "compactions_boundary" r.CompactionsBoundary

        match r.CompactedCutoffMs with
        | Some v -> w.WriteNumber("compacted_cutoff_ms", v)
        | None -> w.WriteNull "compacted_cutoff_ms"

        let strings (name: string) (xs: string list) =
            w.WriteStartArray name

            for x in xs do
                w.WriteStringValue x

            w.WriteEndArray()

        w.WriteStartArray "directories"

        for d in r.Directories do
            w.WriteStartObject()
            w.WriteString("directory", d.Directory)
            w.WriteBoolean("enabled", d.Enabled)
            w.WriteNumber("listed", d.Listed)
            strings "deleted" d.Deleted
            strings "would_delete" d.WouldDelete
            w.WriteStartArray "failed"

            for key, cause in d.Failed do
                w.WriteStartObject()
                w.WriteString("key", key)
                w.WriteString("error", cause)
                w.WriteEndObject()

            w.WriteEndArray()
            strings "kept_fences" d.KeptFences
            strings "ignored" d.Ignored
            w.WriteEndObject()

        w.WriteEndArray()
        strings "notes" r.Notes
        w.WriteEndObject()

    out.WriteLine(Text.Encoding.UTF8.GetString(ms.ToArray()))

let private writeTable (out: TextWriter) (r: GcReport) =
    out.WriteLine(sprintf "gc of manifest %d%s" r.ManifestId (if r.DryRun then " (dry run: nothing deleted)" else ""))

    let verb = if r.DryRun then "would delete" else "deleted"

    let headers =
        [ "directory"; "enabled"; "listed"; verb; "failed"; "kept fences"; "ignored" ]

    let rows =
        [ for d in r.Directories ->
              [ d.Directory
                (if d.Enabled then "yes" else "no")
                string d.Listed
                string (if r.DryRun then d.WouldDelete.Length else d.Deleted.Length)
                string d.Failed.Length
                string d.KeptFences.Length
                string d.Ignored.Length ] ]

    CliCommon.writeTable out "  " headers rows

    for c in r.ExpiredCheckpoints do
        out.WriteLine(
            sprintf "%s expired checkpoint %s" (if r.DryRun then "would remove" else "removed") (Uuid.toString c)
        )

    for d in r.Directories do
        for k in (if r.DryRun then d.WouldDelete else d.Deleted) do
            out.WriteLine(sprintf "%s %s" verb k)

        for k, cause in d.Failed do
            out.WriteLine(sprintf "failed %s: %s" k cause)

        for k in d.KeptFences do
            out.WriteLine(sprintf "kept fence %s" k)

        for k in d.Ignored do
            out.WriteLine(sprintf "ignored %s (unknown name)" k)

    for n in r.Notes do
        out.WriteLine("note: " + n)

/// Runs one pass on `store` (logging to `loggers`, category Slate.Gc) and prints the report;
/// the exit code (0, or 1 when a delete failed).
let run
    (store: IObjectStore)
    (dbPath: string)
    (settings: GcSettings)
    (json: bool)
    (out: TextWriter)
    (loggers: ILoggerFactory)
    (ct: CancellationToken)
    : int =
    let admin = Admin.Create(store, dbPath, TimeProvider.System, None, loggers)

    let r = admin.RunGarbageCollectionOnceAsync(settings, ct).GetAwaiter().GetResult()

    if json then writeJson out r else writeTable out r
    if List.isEmpty (GcReport.failures r) then 0 else 1

/// Handles the command line when its command is `gc`, writing the report to `out` and the log
/// and errors to `err`; None for any other command.
let tryRunWith (argv: string[]) (out: TextWriter) (err: TextWriter) (ct: CancellationToken) : int option =
    if commandOf (List.ofArray argv) <> Some "gc" then
        None
    else
        let empty =
            { Store = None
              Path = None
              Command = None
              DryRun = false
              MinAge = None
              WalFences = false
              Json = false
              LogLevel = LogLevel.Information }

        match parse empty (List.ofArray argv) with
        | Error msg ->
            if msg <> "" then
                err.WriteLine("slate: " + msg)

            err.WriteLine usage
            Some 2
        | Ok a ->
            match a.Store, a.Path with
            | Some store, Some dbPath ->
                let settings =
                    { GcSettings.defaults with
                        DryRun = a.DryRun
                        WalFences = a.WalFences
                        MinAge = defaultArg a.MinAge GcSettings.defaults.MinAge }

                Some(
                    CliCommon.guarded err (fun () ->
                        use loggers = CliLogging.create a.LogLevel err
                        run (ObjectStore.Resolve(store).Inner) dbPath settings a.Json out loggers ct)
                )
            | _ ->
                err.WriteLine "slate: --store and --path are required"
                err.WriteLine usage
                Some 2

/// `tryRunWith` on the console.
let tryRun (argv: string[]) : int option =
    tryRunWith argv Console.Out Console.Error CancellationToken.None
