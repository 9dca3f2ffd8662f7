/// Console logging of the long-running commands (`slate compactor`, `slate gc`): the engine logs
/// through an `ILoggerFactory` (categories Slate.Db, Slate.Compactor, Slate.Gc); this module makes
/// one that writes to standard error (so `--json` standard output stays machine-readable), at the
/// level of `--log-level`.
module Slate.Cli.CliLogging

open System
open System.IO
open Microsoft.Extensions.Logging
open Microsoft.Extensions.Logging.Console

/// The values `--log-level` accepts, in the order of `LogLevel`.
let levelNames = [ "trace"; "debug"; "information"; "warning"; "error"; "none" ]

/// The level named by a `--log-level` value (case-insensitive; "info" and "warn" too).
let parseLevel (s: string) : LogLevel option =
    match s.ToLowerInvariant() with
    | "trace" -> Some LogLevel.Trace
    | "debug" -> Some LogLevel.Debug
    | "information"
    | "info" -> Some LogLevel.Information
    | "warning"
    | "warn" -> Some LogLevel.Warning
    | "error" -> Some LogLevel.Error
    | "none" -> Some LogLevel.None
    | _ -> None

/// The error for a bad `--log-level` value.
let invalidLevel (s: string) : string =
    sprintf "invalid --log-level '%s' (one of %s)" s (String.Join("|", levelNames))

let private shortName (level: LogLevel) =
    match level with
    | LogLevel.Trace -> "trce"
    | LogLevel.Debug -> "dbug"
    | LogLevel.Information -> "info"
    | LogLevel.Warning -> "warn"
    | LogLevel.Error -> "fail"
    | LogLevel.Critical -> "crit"
    | _ -> "none"

/// One log line: `HH:mm:ss.fff info: Slate.Compactor: message` (then the exception, if any).
let formatLine (time: DateTimeOffset) (level: LogLevel) (category: string) (message: string) (e: exn) : string =
    let head =
        sprintf "%s %s: %s: %s" (time.ToString "HH:mm:ss.fff") (shortName level) category message

    if isNull e then
        head
    else
        head + Environment.NewLine + string e

type private WriterLogger(category: string, writer: TextWriter, time: TimeProvider) =
    interface ILogger with
        member _.BeginScope _ = null
        member _.IsEnabled level = level <> LogLevel.None

        member this.Log(level, _, state, e, formatter) =
            if (this :> ILogger).IsEnabled level then
                let line =
                    formatLine (time.GetLocalNow()) level category (formatter.Invoke(state, e)) e

                lock writer (fun () -> writer.WriteLine line)

/// An `ILoggerProvider` writing one formatted line per entry to `writer` (thread-safe); the
/// level filter is the factory's.
type WriterLoggerProvider(writer: TextWriter, time: TimeProvider) =
    do
        if isNull writer then
            nullArg "writer"

    interface ILoggerProvider with
        member _.CreateLogger category =
            WriterLogger(category, writer, time) :> ILogger

        member _.Dispose() = writer.Flush()

/// A logger factory at `level` writing to `err`: the console logger of
/// Microsoft.Extensions.Logging.Console (all levels to standard error) when `err` is the process's
/// standard error, else a `WriterLoggerProvider` on `err` (tests capture it). Dispose it to flush.
let create (level: LogLevel) (err: TextWriter) : ILoggerFactory =
    LoggerFactory.Create(fun b ->
        b.SetMinimumLevel level |> ignore

        if obj.ReferenceEquals(err, Console.Error) then
            b
                .AddConsole(fun o -> o.LogToStandardErrorThreshold <- LogLevel.Trace)
                .AddSimpleConsole(fun o ->
                    o.SingleLine <- true
                    o.TimestampFormat <- "HH:mm:ss.fff ")
            |> ignore
        else
            b.AddProvider(new WriterLoggerProvider(err, TimeProvider.System)) |> ignore)
