/// The `slate` command line: `slate [inspect] --store <url> --path <db> [options]`.
module Slate.Cli.Program

open System
open Microsoft.Extensions.Logging
open Slate
open Slate.Engine

let private usage =
    """usage: slate inspect --store <url> --path <db> [--scan] [--json] [--merge-operator concat]
       slate compactor --store <url> --path <db> [--json] [--merge-operator concat] [--log-level <level>]
                                                                        (until Ctrl-C)

  --store <url>            file:///abs/dir or memory:///
  --path <db>              database path inside the store
  --scan                   list every live key/value
  --json                   with --scan: one {"key_hex","value_hex"} object per line, in key order
  --merge-operator concat  resolve merge operands by byte concatenation
  --log-level <level>      compactor: trace|debug|information|warning|error|none
                           (default information); the log goes to standard error"""

type private Args =
    { Command: string option
      Store: string option
      Path: string option
      Scan: bool
      Json: bool
      Merge: string option
      LogLevel: LogLevel }

let rec private parse (a: Args) (args: string list) : Result<Args, string> =
    match args with
    | [] -> Ok a
    | "--store" :: v :: rest -> parse { a with Store = Some v } rest
    | "--path" :: v :: rest -> parse { a with Path = Some v } rest
    | "--scan" :: rest -> parse { a with Scan = true } rest
    | "--json" :: rest -> parse { a with Json = true } rest
    | "--merge-operator" :: v :: rest -> parse { a with Merge = Some v } rest
    | "--log-level" :: v :: rest ->
        match CliLogging.parseLevel v with
        | Some l -> parse { a with LogLevel = l } rest
        | None -> Error(CliLogging.invalidLevel v)
    | ("-h" | "--help") :: _ -> Error ""
    | x :: _ when x.StartsWith "--" -> Error(sprintf "unknown or incomplete option %s" x)
    | x :: rest when a.Command.IsNone -> parse { a with Command = Some x } rest
    | x :: _ -> Error(sprintf "unexpected argument %s" x)

/// `slate inspect` and `slate compactor` (the compactor until `ct` is cancelled), writing the
/// compactor's lines to `out` and its log and all errors to `err`; the exit code.
let runWith (argv: string array) (out: IO.TextWriter) (err: IO.TextWriter) (ct: Threading.CancellationToken) : int =
    let empty =
        { Command = None
          Store = None
          Path = None
          Scan = false
          Json = false
          Merge = None
          LogLevel = LogLevel.Information }

    match parse empty (List.ofArray argv) with
    | Error msg ->
        if msg <> "" then
            err.WriteLine("slate: " + msg)

        err.WriteLine usage
        2
    | Ok a ->
        match a.Command, a.Store, a.Path with
        | (None | Some "inspect" | Some "compactor"), Some store, Some path ->
            CliCommon.guarded err (fun () ->
                let mergeOp =
                    match a.Merge with
                    | None -> Ok None
                    | Some "concat" -> Ok(Some Inspector.concatMerge)
                    | Some other -> Error other

                match mergeOp with
                | Error other ->
                    err.WriteLine(sprintf "slate: unknown merge operator '%s' (only concat)" other)
                    2
                | Ok mergeOp when a.Command = Some "compactor" ->
                    use loggers = CliLogging.create a.LogLevel err
                    CompactorCmd.run (ObjectStore.Resolve(store).Inner) path a.Json mergeOp out loggers ct
                | Ok mergeOp -> Inspect.run (ObjectStore.Resolve(store).Inner) store path a.Scan a.Json mergeOp)
        | Some cmd, _, _ when cmd <> "inspect" && cmd <> "compactor" ->
            err.WriteLine(sprintf "slate: unknown command %s" cmd)
            err.WriteLine usage
            2
        | _ ->
            err.WriteLine "slate: --store and --path are required"
            err.WriteLine usage
            2

[<EntryPoint>]
let main argv =
    match
        GcCommand.tryRun argv
        |> Option.orElseWith (fun () -> Watch.tryRun argv)
        |> Option.orElseWith (fun () -> Bench.tryRun argv)
    with
    | Some code -> code
    | None when Commands.handles argv -> Commands.run argv Console.Out Console.Error
    | None ->
        use cts = new Threading.CancellationTokenSource()

        Console.CancelKeyPress.Add(fun e ->
            e.Cancel <- true
            cts.Cancel())

        runWith argv Console.Out Console.Error cts.Token
