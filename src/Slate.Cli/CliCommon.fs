/// Pieces every `slate` command shares: aligned tables and the one-line error report.
module Slate.Cli.CliCommon

open System.IO
open Slate
open Slate.Engine

/// The lines of an aligned table (columns padded to their widest cell, two spaces apart), each
/// prefixed with `indent`.
let tableLines (indent: string) (headers: string list) (rows: string list list) : string list =
    let widths =
        headers
        |> List.mapi (fun i h -> rows |> List.fold (fun w r -> max w (String.length (List.item i r))) h.Length)

    let line (cells: string list) =
        List.zip cells widths
        |> List.map (fun (c, w) -> c.PadRight w)
        |> String.concat "  "
        |> fun s -> indent + s.TrimEnd()

    line headers :: List.map line rows

/// Writes an aligned table to `out`.
let writeTable (out: TextWriter) (indent: string) (headers: string list) (rows: string list list) : unit =
    for l in tableLines indent headers rows do
        out.WriteLine l

/// Runs a command; a `SlateException` or `ObjectStoreException` becomes "slate: <message>" on
/// `err` and exit code 1.
let guarded (err: TextWriter) (f: unit -> int) : int =
    try
        f ()
    with
    | :? SlateException as e ->
        err.WriteLine("slate: " + e.Message)
        1
    | :? ObjectStoreException as e ->
        err.WriteLine("slate: " + e.Message)
        1

/// True when `err` is the process's standard error and that is a terminal (not redirected): only
/// then do commands draw a progress line.
let onTerminal (err: TextWriter) : bool =
    obj.ReferenceEquals(err, System.Console.Error)
    && not System.Console.IsErrorRedirected

/// A one-line progress report on `err` ("<label> <n> <unit>"), redrawn in place (carriage
/// return) at most every `everyMs` milliseconds and erased by `Finish`; does nothing unless
/// `enabled` (see `onTerminal`: never when stderr is a file or a pipe).
type Progress(err: TextWriter, enabled: bool, label: string, unit': string, everyMs: int64) =
    let sw = System.Diagnostics.Stopwatch.StartNew()
    let mutable last = -everyMs
    let mutable width = 0

    /// Reports `count` done so far.
    member _.Report(count: int64) : unit =
        if enabled && sw.ElapsedMilliseconds - last >= everyMs then
            last <- sw.ElapsedMilliseconds
            let text = sprintf "%s %d %s" label count unit'
            err.Write("\r" + text.PadRight width)
            err.Flush()
            width <- max width text.Length

    /// Erases the line (if one was drawn).
    member _.Finish() : unit =
        if width > 0 then
            err.Write("\r" + System.String(' ', width) + "\r")
            err.Flush()
            width <- 0
