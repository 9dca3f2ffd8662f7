/// `slate --store <url> --path <db> <command>`: put, get, delete, scan, manifest, manifests and
/// checkpoints create|list|refresh|delete, clone (API.md "Command line"). Human tables by default,
/// `--json` (one JSON object per line) for machines.
module Slate.Cli.Commands

open System
open System.IO
open System.Text
open System.Text.Json
open System.Threading
open Slate
open Slate.Model
open Slate.Engine

/// The commands this module runs.
let names: string list =
    [ "put"
      "get"
      "delete"
      "scan"
      "manifest"
      "manifests"
      "checkpoints"
      "clone" ]

/// Usage text of these commands.
let usage =
    """usage: slate --store <url> --path <db> [--json] <command>

  put <key> <value>                      write a value (opens a writer: fences any other)
  get <key>                              read a value (read-only, follows the latest state)
  delete <key>                           delete a key (opens a writer)
  scan [--prefix P | --from A --to B] [--max N]
                                         list live keys (from inclusive, to exclusive)
  manifest [--id N]                      one manifest (latest by default)
  manifests [--from A] [--to B]          manifest ids in [A, B)
  checkpoints create [--lifetime S] [--name N] [--source ID]
  checkpoints list [--name N]
  checkpoints refresh --id ID [--lifetime S]   (no --lifetime: never expires)
  checkpoints delete --id ID
  clone <source-path> [--checkpoint ID]   make --path a clone of <source-path> (same store),
                                         at that source checkpoint or at its latest state
  gc [--dry-run] [--min-age 5m] [--wal-fences] [--log-level information]
                                         one garbage-collection pass
  compactor [--log-level information]    standalone compactor until Ctrl-C
  watch [--interval 1s] [--count N] [--until-l0 N]
                                         one line per change of L0 / sorted runs
  bench [--records N] [--reads N] [--durable N] [--value-size B]
                                         Slate's workloads on this store (fresh path only)
  inspect [--scan]                       manifest, SST statistics (and content)
  --merge-operator concat                resolve merge operands by byte concatenation
  --log-level <level>                    gc and compactor: trace|debug|information|warning|error|none,
                                         to standard error (default information)"""

let private valued =
    set
        [ "--store"
          "--path"
          "--prefix"
          "--from"
          "--to"
          "--max"
          "--id"
          "--lifetime"
          "--name"
          "--source"
          "--checkpoint"
          "--merge-operator" ]

type private Parsed =
    { Options: Map<string, string>
      Flags: Set<string>
      Words: string list }

exception private Usage of string

let rec private parse (p: Parsed) (args: string list) : Parsed =
    match args with
    | [] -> { p with Words = List.rev p.Words }
    | o :: v :: rest when valued.Contains o -> parse { p with Options = p.Options.Add(o, v) } rest
    | o :: [] when valued.Contains o -> raise (Usage(sprintf "option %s needs a value" o))
    | "--json" :: rest -> parse { p with Flags = p.Flags.Add "--json" } rest
    | o :: _ when o.StartsWith "--" -> raise (Usage(sprintf "unknown option %s" o))
    | w :: rest -> parse { p with Words = w :: p.Words } rest

let private empty =
    { Options = Map.empty
      Flags = Set.empty
      Words = [] }

/// True when `argv` names one of these commands (else another module handles it).
let handles (argv: string array) : bool =
    try
        match (parse empty (List.ofArray argv)).Words with
        | w :: _ -> List.contains w names
        | [] -> false
    with Usage _ ->
        false

let private utf8 (s: string) = Encoding.UTF8.GetBytes s

/// UTF-8 when printable, else 0x-hex.
let private show (b: byte[]) =
    if b.Length > 0 && b |> Array.forall (fun c -> c >= 0x20uy && c < 0x7fuy) then
        Encoding.ASCII.GetString b
    else
        "0x" + Bytes.toHex b

let private table (out: TextWriter) (headers: string list) (rows: string list list) =
    CliCommon.writeTable out "" headers rows

let private json (out: TextWriter) (value: 'a) =
    out.WriteLine(JsonSerializer.Serialize value)

let private time (s: uint32) =
    DateTimeOffset.FromUnixTimeSeconds(int64 s).ToString("u")

let private u64 (name: string) (v: string) =
    match UInt64.TryParse v with
    | true, n -> n
    | _ -> raise (Usage(sprintf "%s must be a non-negative integer, not '%s'" name v))

let private guid (v: string) =
    match Guid.TryParse v with
    | true, g -> g
    | _ -> raise (Usage(sprintf "'%s' is not a checkpoint id (UUID)" v))

let private seconds (v: string) =
    match Double.TryParse(v, Globalization.NumberStyles.Float, Globalization.CultureInfo.InvariantCulture) with
    | true, s when s > 0.0 -> TimeSpan.FromSeconds s
    | _ -> raise (Usage(sprintf "--lifetime must be a positive number of seconds, not '%s'" v))

let private checkpointJson (c: Checkpoint) =
    {| id = Uuid.toString c.Id
       manifest_id = c.ManifestId
       created = time c.CreateTimeS
       expires = c.ExpireTimeS |> Option.map time |> Option.toObj
       name = Option.toObj c.Name |}

let private printCheckpoints (out: TextWriter) (asJson: bool) (cps: Checkpoint list) =
    if asJson then
        for c in cps do
            json out (checkpointJson c)
    else
        table
            out
            [ "id"; "manifest"; "created"; "expires"; "name" ]
            [ for c in cps ->
                  [ Uuid.toString c.Id
                    string c.ManifestId
                    time c.CreateTimeS
                    (c.ExpireTimeS |> Option.map time |> Option.defaultValue "never")
                    defaultArg c.Name "" ] ]

/// One `external_dbs` entry (SPEC §5.15) as JSON: path, checkpoints and the SST ids it lends.
let private externalJson (e: ExternalDb) =
    {| path = e.Path
       source_checkpoint_id = Uuid.toString e.SourceCheckpointId
       final_checkpoint_id = e.FinalCheckpointId |> Option.map Uuid.toString |> Option.toObj
       sst_ids = e.SstIds |> List.map Ulid.toString |}

let private manifestJson (m: StoredManifest) =
    let sst (h: SstHandle) =
        {| id = Ulid.toString h.Id
           first_key_hex = h.Info.FirstEntry |> Option.map Bytes.toHex |> Option.toObj
           last_key_hex = h.Info.LastEntry |> Option.map Bytes.toHex |> Option.toObj |}

    let mm = m.Manifest

    {| id = m.Id
       writer_epoch = mm.WriterEpoch
       compactor_epoch = mm.CompactorEpoch
       replay_after_wal_id = mm.ReplayAfterWalId
       next_wal_sst_id = mm.WalIdLastSeen + 1UL
       last_l0_seq = mm.LastL0Seq
       l0 = mm.L0 |> List.map sst
       sorted_runs =
        mm.Compacted
        |> List.map (fun sr ->
            {| id = sr.Id
               ssts = sr.Ssts |> List.map sst |})
       checkpoints = mm.Checkpoints |> List.map checkpointJson
       external_dbs = mm.ExternalDbs |> List.map externalJson |}

let private printManifest (out: TextWriter) (m: StoredManifest) =
    let mm = m.Manifest
    out.WriteLine(sprintf "manifest %d" m.Id)
    out.WriteLine(sprintf "  writer_epoch %d   compactor_epoch %d" mm.WriterEpoch mm.CompactorEpoch)

    out.WriteLine(sprintf "  replay_after_wal_id %d   next_wal_sst_id %d" mm.ReplayAfterWalId (mm.WalIdLastSeen + 1UL))

    out.WriteLine(sprintf "  last_l0_seq %d" mm.LastL0Seq)
    out.WriteLine(sprintf "  L0 SSTs %d   sorted runs %d" mm.L0.Length mm.Compacted.Length)

    for h in mm.L0 do
        out.WriteLine(
            sprintf
                "    L0 %s  %s .. %s"
                (Ulid.toString h.Id)
                (h.Info.FirstEntry |> Option.map show |> Option.defaultValue "-")
                (h.Info.LastEntry |> Option.map show |> Option.defaultValue "-")
        )

    for sr in mm.Compacted do
        out.WriteLine(sprintf "    SR %d: %d SSTs" sr.Id sr.Ssts.Length)

    out.WriteLine(sprintf "  checkpoints %d" mm.Checkpoints.Length)

    if not mm.Checkpoints.IsEmpty then
        printCheckpoints out false mm.Checkpoints

    out.WriteLine(sprintf "  external_dbs %d" mm.ExternalDbs.Length)

    if not mm.ExternalDbs.IsEmpty then
        table
            out
            [ "path"; "source checkpoint"; "final checkpoint"; "ssts"; "sst ids" ]
            [ for e in mm.ExternalDbs ->
                  [ e.Path
                    Uuid.toString e.SourceCheckpointId
                    (e.FinalCheckpointId |> Option.map Uuid.toString |> Option.defaultValue "-")
                    string e.SstIds.Length
                    (match e.SstIds with
                     | [] -> "-"
                     | ids -> ids |> List.map Ulid.toString |> String.concat ",") ] ]

let private value (r: RowEntry) =
    match r.Value with
    | RowValue.Value v -> v
    | _ -> [||]

let private rowJson (r: RowEntry) =
    {| key = Encoding.UTF8.GetString r.Key
       key_hex = Bytes.toHex r.Key
       value = Encoding.UTF8.GetString(value r)
       value_hex = Bytes.toHex (value r)
       seq = r.Seq |}

let private execute (store: IObjectStore) (path: string) (p: Parsed) (out: TextWriter) (err: TextWriter) : int =
    let ct = CancellationToken.None
    let asJson = p.Flags.Contains "--json"
    let opt (name: string) = p.Options.TryFind name
    let wait (t: Threading.Tasks.Task<'a>) = t.GetAwaiter().GetResult()
    let waitU (t: Threading.Tasks.Task) = t.GetAwaiter().GetResult()

    let mergeOp =
        match opt "--merge-operator" with
        | None -> None
        | Some "concat" -> Some Inspector.concatMerge
        | Some other -> raise (Usage(sprintf "unknown merge operator '%s' (only concat)" other))

    let readerSettings =
        { ReaderSettings.defaults with
            Mode = ReaderMode.FollowLatest
            MergeOperator = mergeOp }

    let withReader (f: Reader -> int) =
        let r = wait (Reader.OpenAsync(store, path, readerSettings, ct))

        try
            f r
        finally
            waitU (r.CloseAsync ct)

    let write (ops: WriteOp list) =
        let db =
            wait (
                Db.OpenAsync(
                    store,
                    path,
                    { DbOptions.foreground with
                        MergeOperator = mergeOp },
                    ct
                )
            )

        try
            let w = wait (db.WriteAsync(ops, ct))
            waitU (db.CloseAsync(Some FlushKind.MemTable, ct))
            w
        with _ ->
            if db.CloseReason.IsNone then
                waitU (db.CloseAsync(None, ct))

            reraise ()

    let admin () =
        Admin.Create(store, path, TimeProvider.System, None)

    match p.Words with
    | [ "put"; k; v ] ->
        let w = write [ WriteOp.Put(utf8 k, utf8 v, Ttl.Default) ]

        if asJson then
            json
                out
                {| seq = w.Seq
                   create_ts = w.CreateTs |}
        else
            out.WriteLine(sprintf "put %s (seq %d)" k w.Seq)

        0
    | [ "delete"; k ] ->
        let w = write [ WriteOp.Delete(utf8 k) ]

        if asJson then
            json
                out
                {| seq = w.Seq
                   create_ts = w.CreateTs |}
        else
            out.WriteLine(sprintf "deleted %s (seq %d)" k w.Seq)

        0
    | [ "get"; k ] ->
        withReader (fun r ->
            let opts: ReadOpts =
                { Durability = Durability.Memory
                  Dirty = false
                  CacheBlocks = true }

            match wait (r.GetAsync(utf8 k, opts, ct)) with
            | Some row ->
                if asJson then
                    json out (rowJson row)
                else
                    out.WriteLine(Encoding.UTF8.GetString(value row))

                0
            | None ->
                if asJson then
                    json out {| key = k; found = false |}
                else
                    err.WriteLine(sprintf "slate: %s not found" k)

                1)
    | [ "scan" ] ->
        let range =
            match opt "--prefix", opt "--from", opt "--to" with
            | Some _, Some _, _
            | Some _, _, Some _ -> raise (Usage "use --prefix or --from/--to, not both")
            | Some pre, None, None -> KeyRange.prefix (utf8 pre)
            | None, f, t ->
                match KeyRange.create (f |> Option.map utf8) true (t |> Option.map utf8) false with
                | Ok r -> r
                | Error e -> raise (SlateException.Invalid e)

        let max =
            opt "--max"
            |> Option.map (fun v -> int (min (u64 "--max" v) (uint64 Int32.MaxValue)))
            |> Option.defaultValue Int32.MaxValue

        withReader (fun r ->
            let it = r.Scan(range, false, false)
            let rows = ResizeArray<RowEntry>()
            let mutable go = rows.Count < max
            // a long scan shows its count on a terminal (never in --json, never into a pipe)
            let progress =
                CliCommon.Progress(err, not asJson && CliCommon.onTerminal err, "scan:", "rows", 250L)

            while go do
                let batch = wait (it.NextBatchAsync(min 1024 (max - rows.Count), ct))
                rows.AddRange batch
                progress.Report(int64 rows.Count)
                go <- not batch.IsEmpty && rows.Count < max

            progress.Finish()

            if asJson then
                for row in rows do
                    json out (rowJson row)
            else
                table
                    out
                    [ "key"; "value"; "seq" ]
                    [ for row in rows ->
                          [ show row.Key
                            (let v = value row in if v.Length = 0 then "(empty)" else show v)
                            string row.Seq ] ]

            0)
    | [ "manifest" ] ->
        let id = opt "--id" |> Option.map (u64 "--id")

        match wait ((admin ()).ReadManifestAsync(id, ct)) with
        | None ->
            err.WriteLine(
                match id with
                | Some n -> sprintf "slate: manifest %d not found" n
                | None -> sprintf "slate: no manifest at %s" path
            )

            1
        | Some m ->
            if asJson then
                json out (manifestJson m)
            else
                printManifest out m

            0
    | [ "manifests" ] ->
        let ms =
            wait (
                (admin ())
                    .ListManifestsAsync(
                        opt "--from" |> Option.map (u64 "--from"),
                        opt "--to" |> Option.map (u64 "--to"),
                        ct
                    )
            )

        if asJson then
            for m in ms do
                json out (manifestJson m)
        else
            table
                out
                [ "id"
                  "writer_epoch"
                  "compactor_epoch"
                  "l0"
                  "sorted_runs"
                  "last_l0_seq"
                  "checkpoints" ]
                [ for m in ms ->
                      [ string m.Id
                        string m.Manifest.WriterEpoch
                        string m.Manifest.CompactorEpoch
                        string m.Manifest.L0.Length
                        string m.Manifest.Compacted.Length
                        string m.Manifest.LastL0Seq
                        string m.Manifest.Checkpoints.Length ] ]

        0
    | [ "checkpoints"; "create" ] ->
        let o: Slate.Engine.CheckpointOptions =
            { Lifetime = opt "--lifetime" |> Option.map seconds
              Source = opt "--source" |> Option.map guid
              Name = opt "--name" }

        let c = wait ((admin ()).CreateDetachedCheckpointAsync(o, ct))
        printCheckpoints out asJson [ c ]
        0
    | [ "checkpoints"; "list" ] ->
        printCheckpoints out asJson (wait ((admin ()).ListCheckpointsAsync(opt "--name", ct)))
        0
    | [ "checkpoints"; "refresh" ] ->
        match opt "--id" with
        | None -> raise (Usage "checkpoints refresh needs --id")
        | Some id ->
            let c =
                wait ((admin ()).RefreshCheckpointAsync(guid id, opt "--lifetime" |> Option.map seconds, ct))

            printCheckpoints out asJson [ c ]
            0
    | [ "checkpoints"; "delete" ] ->
        match opt "--id" with
        | None -> raise (Usage "checkpoints delete needs --id")
        | Some id ->
            waitU ((admin ()).DeleteCheckpointAsync(guid id, ct))

            if asJson then
                json out {| deleted = id |}
            else
                out.WriteLine(sprintf "deleted checkpoint %s" id)

            0
    | [ "clone"; source ] ->
        let m =
            wait ((admin ()).CreateCloneAsync(source, opt "--checkpoint" |> Option.map guid, ct))

        let sources = m.Manifest.ExternalDbs

        if asJson then
            json
                out
                {| clone = path
                   source = source
                   manifest_id = m.Id
                   external_dbs =
                    sources
                    |> List.map (fun e ->
                        {| path = e.Path
                           source_checkpoint_id = Uuid.toString e.SourceCheckpointId
                           final_checkpoint_id = e.FinalCheckpointId |> Option.map Uuid.toString |> Option.toObj
                           sst_count = e.SstIds.Length |}) |}
        else
            out.WriteLine(sprintf "%s is a clone of %s (manifest %d)" path source m.Id)

            for e in sources do
                out.WriteLine(
                    sprintf
                        "  external %s  source checkpoint %s  final checkpoint %s  %d SSTs"
                        e.Path
                        (Uuid.toString e.SourceCheckpointId)
                        (e.FinalCheckpointId |> Option.map Uuid.toString |> Option.defaultValue "-")
                        e.SstIds.Length
                )

        0
    | "clone" :: _ -> raise (Usage "clone needs exactly one <source-path>")
    | words -> raise (Usage(sprintf "unknown command: %s" (String.concat " " words)))

/// Runs a command line of this module, writing to `out` and `err`; returns the exit code
/// (0 ok, 1 failure or not found, 2 usage).
let run (argv: string array) (out: TextWriter) (err: TextWriter) : int =
    try
        CliCommon.guarded err (fun () ->
            let p = parse empty (List.ofArray argv)

            match p.Options.TryFind "--store", p.Options.TryFind "--path" with
            | Some url, Some path -> execute (ObjectStore.Resolve(url).Inner) path p out err
            | _ -> raise (Usage "--store and --path are required"))
    with Usage msg ->
        err.WriteLine("slate: " + msg)
        err.WriteLine usage
        2
