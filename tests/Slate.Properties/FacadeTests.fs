/// The C# facade (API.md: SlateClient, WriteBatch, KeyRange, KeyValue, SlateIterator, WriteHandle,
/// DbStatus, SlateException, ObjectStore) driven from F#.
module Slate.Properties.FacadeTests

open System
open System.Collections.Generic
open System.IO
open System.Threading.Tasks
open Expecto
open Slate
open Slate.Properties.TestUtil
open Slate.Properties.EngineTests.Eng

let private rom (s: string) = ReadOnlyMemory<byte>(utf8 s)

let private vt (t: ValueTask<'a>) : 'a = await (t.AsTask())
let private vtu (t: ValueTask) : unit = awaitU (t.AsTask())

let private small () =
    SlateOptions(
        FlushInterval = Nullable(),
        L0SstSizeBytes = 1024L,
        BlockCacheBytes = (1L <<< 20),
        MetaCacheBytes = (1L <<< 20)
    )

let private openClient (store: ObjectStore) (o: SlateOptions) : SlateClient =
    await (SlateClient.OpenAsync("facade/db", store, o))

let private getS (c: SlateClient) (k: string) : string option = vt (c.GetStringAsync k) |> Option.ofObj

let private invalid (what: string) (message: string option) (f: unit -> Task) : unit =
    let e = expectSlate SlateErrorKind.Invalid what f

    match message with
    | Some m -> Expect.equal e.Message m (sprintf "%s: message" what)
    | None -> ()

let private keys (kvs: IReadOnlyList<KeyValue>) : string list = [ for kv in kvs -> kv.KeyString ]

let private drainIt (it: SlateIterator) : (string * string) list =
    let e = it.GetAsyncEnumerator()
    let acc = ResizeArray()

    while vt (e.MoveNextAsync()) do
        acc.Add(e.Current.KeyString, e.Current.ValueString)

    vtu (e.DisposeAsync())
    List.ofSeq acc

let private concat =
    { new IMergeOperator with
        member _.Merge(_key, existing, hasExisting, operand) =
            if hasExisting then
                Array.append (existing.ToArray()) (operand.ToArray())
            else
                operand.ToArray() }

let private roundTrip (name: string) (makeStore: string -> ObjectStore * ObjectStore) : Test =
    test (sprintf "%s: put, flush, close and reopen" name) {
        let dir = tempDir "facade"

        try
            let first, second = makeStore dir
            let c = openClient first (small ())
            vt (c.PutAsync("a", "1")) |> ignore
            vt (c.PutAsync("b", "2")) |> ignore
            vt (c.DeleteAsync "b") |> ignore
            awaitU (c.FlushAsync(FlushType.MemTable))
            vt (c.PutAsync("c", "3")) |> ignore
            awaitU (c.CloseAsync())
            let c2 = openClient second (small ())
            Expect.equal (drainIt (c2.Scan KeyRange.All)) [ "a", "1"; "c", "3" ] "reopened state"
            awaitU (c2.CloseAsync())
        finally
            cleanup dir
    }

let private storeTests =
    testList
        "stores"
        [ roundTrip "InMemory" (fun _ ->
              let s = ObjectStore.InMemory()
              s, s)
          roundTrip "LocalFileSystem then file:/// URL" (fun dir ->
              ObjectStore.LocalFileSystem dir, ObjectStore.Resolve("file://" + dir))
          test "memory:/// resolves to a fresh in-memory store; OpenAsync(path, url) works" {
              let c = await (SlateClient.OpenAsync("u", "memory:///", small ()))
              vt (c.PutAsync("k", "v")) |> ignore
              Expect.equal (getS c "k") (Some "v") "read back"
              awaitU (c.CloseAsync())
              let s = ObjectStore.Resolve "memory:///"
              let c2 = await (SlateClient.OpenAsync("u", s, small ()))
              Expect.equal (getS c2 "k") None "another memory:/// store is empty"
              awaitU (c2.CloseAsync())
          }
          test "the local store writes the documented layout" {
              let dir = tempDir "layout"

              try
                  let c = openClient (ObjectStore.Resolve("file://" + dir)) (small ())
                  let h = vt (c.PutAsync("k", "v"))
                  awaitU (h.AwaitDurableAsync())
                  awaitU (c.CloseAsync())

                  for sub in [ "manifest"; "wal"; "compacted" ] do
                      Expect.isTrue (Directory.Exists(Path.Combine(dir, "facade", "db", sub))) sub
              finally
                  cleanup dir
          }
          test "unknown or malformed store URLs are Invalid" {
              for url in [ "ftp://x"; "not a url"; "gopher://host/db" ] do
                  invalid url None (fun () ->
                      ObjectStore.Resolve url |> ignore
                      Task.CompletedTask)
          }
          test "invalid settings are Invalid at open" {
              invalid "L0SstSizeBytes = 10" None (fun () ->
                  SlateClient.OpenAsync("x", ObjectStore.InMemory(), SlateOptions(L0SstSizeBytes = 10L)))
          } ]

let private validationTests =
    testList
        "validation"
        [ test "keys, batches and ranges are validated with the documented messages" {
              let c = openClient (ObjectStore.InMemory()) (small ())
              invalid "empty key" (Some "key cannot be empty") (fun () -> c.PutAsync("", "v").AsTask())
              invalid "empty key get" (Some "key cannot be empty") (fun () -> c.GetAsync(rom "").AsTask())
              invalid "empty key delete" (Some "key cannot be empty") (fun () -> c.DeleteAsync("").AsTask())
              let long = String('k', 65536)
              invalid "65536-byte key" None (fun () -> c.PutAsync(long, "v").AsTask())
              vt (c.PutAsync(String('k', 65535), "max")) |> ignore
              Expect.equal (getS c (String('k', 65535))) (Some "max") "a 65535-byte key is fine"
              invalid "empty batch" None (fun () -> c.WriteAsync(WriteBatch()).AsTask())
              let b = WriteBatch().Put("a", "1").Delete("b")
              Expect.equal b.Count 2 "batch count"
              vt (c.WriteAsync b) |> ignore

              invalid "reused batch" (Some "write batch has already been consumed") (fun () -> c.WriteAsync(b).AsTask())

              invalid "adding to a consumed batch" (Some "write batch has already been consumed") (fun () ->
                  b.Put("c", "3") |> ignore
                  Task.CompletedTask)

              invalid "start > end" (Some "range start must not be greater than range end") (fun () ->
                  KeyRange.Create("b", "a") |> ignore
                  Task.CompletedTask)

              for si, ei in [ true, false; false, true; false, false ] do
                  invalid (sprintf "(a, a) %b %b" si ei) (Some "range must be non-empty") (fun () ->
                      KeyRange.Create("a", "a", si, ei) |> ignore
                      Task.CompletedTask)

              Expect.equal (drainIt (c.Scan(KeyRange.Create("a", "a", true, true)))) [ "a", "1" ] "[a, a] is fine"

              invalid "ReadAheadBytes 0" (Some "ReadAheadBytes must be at least 1 (got 0)") (fun () ->
                  c.Scan(KeyRange.All, ScanOptions(ReadAheadBytes = 0L)) |> ignore
                  Task.CompletedTask)

              invalid "MaxFetchTasks 0" (Some "MaxFetchTasks must be at least 1 (got 0)") (fun () ->
                  c.Scan(KeyRange.All, ScanOptions(MaxFetchTasks = 0)) |> ignore
                  Task.CompletedTask)

              for i in 0..99 do
                  vt (c.PutAsync(sprintf "r%02d" i, String('v', 40))) |> ignore

              awaitU (c.FlushAsync(FlushType.MemTable))

              for order in [ IterationOrder.Ascending; IterationOrder.Descending ] do
                  Expect.equal
                      (drainIt (
                          c.Scan(
                              KeyRange.Prefix "r",
                              ScanOptions(ReadAheadBytes = 65536L, MaxFetchTasks = 4, Order = order)
                          )
                      ))
                      (drainIt (c.Scan(KeyRange.Prefix "r", ScanOptions(Order = order))))
                      (sprintf "read-ahead scan equals a plain scan (%A)" order)

              invalid "merge without operator" None (fun () -> c.MergeAsync(rom "m", rom "x").AsTask())

              invalid "ExpireAfter 0" None (fun () ->
                  Ttl.ExpireAfter TimeSpan.Zero |> ignore
                  Task.CompletedTask)

              awaitU (c.CloseAsync())
          } ]

let private readTests =
    testList
        "reads"
        [ test "deleted → null, empty value → byte[0], KeyValue metadata with a TTL" {
              let c = openClient (ObjectStore.InMemory()) (small ())
              vt (c.PutAsync("d", "x")) |> ignore
              vt (c.DeleteAsync "d") |> ignore
              Expect.isNull (vt (c.GetAsync(rom "d"))) "deleted key reads as null"
              Expect.isNull (vt (c.GetAsync(rom "never"))) "missing key reads as null"
              vt (c.PutAsync(rom "e", ReadOnlyMemory<byte>.Empty)) |> ignore
              let e = vt (c.GetAsync(rom "e"))
              Expect.isNotNull e "empty value is not null"
              Expect.equal e.Length 0 "empty value is byte[0]"
              let ttl = TimeSpan.FromMinutes 5.0
              let h = vt (c.PutAsync("t", "v", PutOptions(Ttl = Ttl.ExpireAfter ttl)))
              let kv = vt (c.GetKeyValueAsync(rom "t"))
              Expect.equal kv.KeyString "t" "key"
              Expect.equal kv.ValueString "v" "value"
              Expect.equal kv.Seq h.Seq "seq = the write handle's"
              Expect.equal kv.CreateTs h.CreateTs "create_ts = the write handle's"
              Expect.equal kv.ExpireTs (Nullable(h.CreateTs + 300_000L)) "expire_ts = create_ts + ttl"
              let h2 = vt (c.PutAsync("n", "v", PutOptions(Ttl = Ttl.NoExpiry)))
              let kv2 = vt (c.GetKeyValueAsync(rom "n"))
              Expect.equal kv2.ExpireTs (Nullable()) "no expiry"
              Expect.isGreaterThan h2.Seq h.Seq "seqs increase"
              awaitU (c.FlushAsync(FlushType.MemTable))

              let fields (k: KeyValue) =
                  k.KeyString, k.ValueString, k.Seq, k.CreateTs, k.ExpireTs

              Expect.equal (fields (vt (c.GetKeyValueAsync "t"))) (fields kv) "metadata survives the L0 flush"
              Expect.equal (vt (c.GetKeyValueAsync "t")) kv "KeyValue equality compares bytes (another read)"
              awaitU (c.CloseAsync())
          }

          testProp "KeyValue: equal iff key bytes, value bytes, Seq, CreateTs and ExpireTs are equal; hash agrees"
          <| fun (k: byte[], v: byte[], seq: uint64, cts: int64, ets: int64 option, which: int) ->
              let ets = Option.toNullable ets

              let a =
                  KeyValue(ReadOnlyMemory(Array.copy k), ReadOnlyMemory(Array.copy v), seq, cts, ets)
              // same content, different arrays (and a slice of a larger array)
              let wide = Array.concat [ [| 9uy |]; v; [| 9uy |] ]

              let b =
                  KeyValue(ReadOnlyMemory(Array.copy k), ReadOnlyMemory(wide, 1, v.Length), seq, cts, ets)

              Expect.equal a b "equal content"
              Expect.isTrue (a.Equals(b) && b.Equals(a)) "Equals both ways"
              Expect.equal (a.GetHashCode()) (b.GetHashCode()) "equal hashes"
              Expect.isTrue (HashSet<KeyValue>([ a ]).Contains b) "usable as a hash key"

              let c =
                  match (abs which) % 5 with
                  | 0 -> KeyValue(ReadOnlyMemory(Array.append k [| 0uy |]), b.Value, seq, cts, ets)
                  | 1 -> KeyValue(b.Key, ReadOnlyMemory(Array.append v [| 1uy |]), seq, cts, ets)
                  | 2 -> KeyValue(b.Key, b.Value, seq + 1UL, cts, ets)
                  | 3 -> KeyValue(b.Key, b.Value, seq, cts + 1L, ets)
                  | _ -> KeyValue(b.Key, b.Value, seq, cts, (if ets.HasValue then Nullable() else Nullable 5L))

              Expect.notEqual a c "one field differs"
              Expect.isFalse (a.Equals c) "Equals false"
              Expect.isFalse (a.Equals(null: KeyValue)) "not equal to null"

          test "SlateIterator: batches, exhaustion, seek rules, descending order, await foreach" {
              let c = openClient (ObjectStore.InMemory()) (small ())

              for i in 1..5 do
                  vt (c.PutAsync(sprintf "k%d" i, string i)) |> ignore

              awaitU (c.FlushAsync(FlushType.MemTable))
              vt (c.PutAsync("k6", "6")) |> ignore
              let it = c.Scan(KeyRange.Create("k1", "k9"))
              Expect.isEmpty (vt (it.NextBatchAsync 0)) "max 0 returns nothing"
              Expect.equal (keys (vt (it.NextBatchAsync 2))) [ "k1"; "k2" ] "max 0 did not advance"
              invalid "seek to the last returned key" None (fun () -> it.SeekAsync("k2").AsTask())
              invalid "seek backwards" None (fun () -> it.SeekAsync("k1").AsTask())
              invalid "seek outside the range" None (fun () -> it.SeekAsync("z").AsTask())
              Expect.equal (vt (it.NextAsync())).KeyString "k3" "usable after a rejected seek"
              vtu (it.SeekAsync "k5")
              let rest = vt (it.NextBatchAsync 10)
              Expect.equal (keys rest) [ "k5"; "k6" ] "seek skips ahead"
              Expect.isNull (vt (it.NextAsync())) "fewer than max meant exhausted"
              vtu (it.DisposeAsync())
              let desc = c.Scan(KeyRange.All, ScanOptions(Order = IterationOrder.Descending))
              Expect.equal (keys (vt (desc.NextBatchAsync 2))) [ "k6"; "k5" ] "descending"
              vtu (desc.SeekAsync "k2")
              Expect.equal (keys (vt (desc.NextBatchAsync 5))) [ "k2"; "k1" ] "descending seek"

              Expect.equal
                  (drainIt (c.Scan KeyRange.All))
                  [ for i in 1..6 -> sprintf "k%d" i, string i ]
                  "await foreach over IAsyncEnumerable"

              awaitU (c.CloseAsync())
          }

          test "ScanPrefix with and without a subrange" {
              let c = openClient (ObjectStore.InMemory()) (small ())

              for k in [ "p"; "p/a"; "p/b"; "p/c"; "q/a"; "o/z" ] do
                  vt (c.PutAsync(k, k)) |> ignore

              let ks (it: SlateIterator) = drainIt it |> List.map fst
              Expect.equal (ks (c.ScanPrefix "p/")) [ "p/a"; "p/b"; "p/c" ] "whole prefix"
              Expect.equal (ks (c.ScanPrefix "p")) [ "p"; "p/a"; "p/b"; "p/c" ] "prefix includes itself"
              Expect.equal (ks (c.ScanPrefix("p/", KeyRange.Create("b", null)))) [ "p/b"; "p/c" ] "from a suffix"
              Expect.equal (ks (c.ScanPrefix("p/", KeyRange.Create(null, "b")))) [ "p/a" ] "below a suffix"

              Expect.equal (ks (c.ScanPrefix("p/", KeyRange.Create("a", "b", false, true)))) [ "p/b" ] "(a, b] suffixes"

              awaitU (c.CloseAsync())
          }

          test "snapshot reads stay frozen across writes and flushes" {
              let c = openClient (ObjectStore.InMemory()) (small ())
              let h = vt (c.PutAsync("s", "1"))
              vt (c.PutAsync("t", "1")) |> ignore
              use snap = c.Snapshot()
              Expect.isGreaterThan snap.Seq h.Seq "snapshot at the last committed seq"
              vt (c.PutAsync("s", "2")) |> ignore
              vt (c.DeleteAsync "t") |> ignore
              vt (c.PutAsync("u", "2")) |> ignore

              for flush in [ None; Some FlushType.Wal; Some FlushType.MemTable ] do
                  flush |> Option.iter (fun f -> awaitU (c.FlushAsync f))
                  Expect.equal (vt (snap.GetAsync(rom "s")) |> str) "1" "snapshot get"
                  Expect.equal (drainIt (snap.Scan KeyRange.All)) [ "s", "1"; "t", "1" ] "snapshot scan"
                  Expect.equal (drainIt (snap.ScanPrefix(rom "t"))) [ "t", "1" ] "snapshot prefix scan"
                  Expect.equal (getS c "s") (Some "2") "the client sees the new value"

              snap.Dispose()

              Expect.throwsT<ObjectDisposedException>
                  (fun () -> snap.GetAsync(rom "s").AsTask().GetAwaiter().GetResult() |> ignore)
                  "disposed snapshot"

              awaitU (c.CloseAsync())
          } ]

let private lifecycleTests =
    testList
        "lifecycle"
        [ test "DbStatus, CloseAsync and Closed/Clean afterwards" {
              let c = openClient (ObjectStore.InMemory()) (small ())
              let st = c.Status
              Expect.equal st.CloseReason (Nullable()) "open"
              Expect.isGreaterThanOrEqual st.ManifestId 2UL "open wrote the epoch manifest"
              let h = vt (c.PutAsync("a", "1"))
              Expect.isLessThan c.Status.DurableSeq h.Seq "not durable yet"
              within 10.0 "AwaitDurableAsync" (h.AwaitDurableAsync())
              Expect.equal c.Status.DurableSeq h.Seq "durable"
              awaitU (c.CloseAsync())
              Expect.equal c.Status.CloseReason (Nullable CloseReason.Clean) "closed"
              expectClosed CloseReason.Clean "put" (fun () -> c.PutAsync("b", "2").AsTask())
              expectClosed CloseReason.Clean "get" (fun () -> c.GetAsync(rom "a").AsTask())
              expectClosed CloseReason.Clean "flush" (fun () -> c.FlushAsync())

              expectClosed CloseReason.Clean "scan" (fun () -> (c.Scan KeyRange.All).NextAsync().AsTask())

              expectClosed CloseReason.Clean "second close" (fun () -> c.CloseAsync())
              vtu ((c :> IAsyncDisposable).DisposeAsync()) // closed: does nothing
          }

          test "DisposeAsync closes (flushing to L0); CloseAsync(null flush) discards non-durable writes" {
              let store = ObjectStore.InMemory()
              let c = openClient store (small ())
              vt (c.PutAsync("a", "1")) |> ignore
              vtu ((c :> IAsyncDisposable).DisposeAsync())
              Expect.equal c.Status.CloseReason (Nullable CloseReason.Clean) "disposed = closed"

              let c2 =
                  openClient store (SlateOptions(FlushInterval = Nullable(), FlushOnDurableWait = false))

              Expect.equal (getS c2 "a") (Some "1") "flushed by DisposeAsync"
              let h = vt (c2.PutAsync("b", "2"))
              let pending = h.AwaitDurableAsync()
              awaitU (c2.CloseAsync(CloseOptions(FlushOnClose = Nullable())))
              expectClosed CloseReason.Clean "pending AwaitDurableAsync" (fun () -> pending)
              let c3 = openClient store (small ())
              Expect.equal (getS c3 "b") None "the non-durable write is gone"
              c3.Dispose()
              Expect.equal c3.Status.CloseReason (Nullable CloseReason.Clean) "Dispose closes too"
          }

          test "merge operator: merges resolve across memtable, L0, batches and reopen" {
              let store = ObjectStore.InMemory()

              let o () =
                  SlateOptions(FlushInterval = Nullable(), L0SstSizeBytes = 1024L, MergeOperator = concat)

              let c = openClient store (o ())
              vt (c.MergeAsync("m", "a")) |> ignore
              awaitU (c.FlushAsync(FlushType.MemTable))
              vt (c.MergeAsync("m", "b")) |> ignore
              Expect.equal (getS c "m") (Some "ab") "L0 operand + memtable operand"
              vt (c.PutAsync("m", "X")) |> ignore
              vt (c.MergeAsync("m", "c")) |> ignore
              awaitU (c.FlushAsync(FlushType.MemTable))
              vt (c.MergeAsync("m", "d")) |> ignore
              Expect.equal (getS c "m") (Some "Xcd") "a put is the base"

              vt (c.WriteAsync(WriteBatch().Merge("n", "1").Merge("n", "2").Put("o", "p").Merge("o", "q")))
              |> ignore

              vt (c.DeleteAsync "x") |> ignore
              vt (c.MergeAsync("x", "after-delete")) |> ignore

              let expected = [ "m", "Xcd"; "n", "12"; "o", "pq"; "x", "after-delete" ]
              Expect.equal (drainIt (c.Scan KeyRange.All)) expected "scan resolves merges"

              Expect.equal
                  (drainIt (c.Scan(KeyRange.All, ScanOptions(Order = IterationOrder.Descending))))
                  (List.rev expected)
                  "descending scan resolves merges"

              awaitU (c.CloseAsync())
              let c2 = openClient store (o ())
              Expect.equal (drainIt (c2.Scan KeyRange.All)) expected "after reopen"
              awaitU (c2.CloseAsync())
              let c3 = openClient store (small ())
              invalid "reading merges without an operator" None (fun () -> c3.GetAsync(rom "n").AsTask())
              awaitU (c3.CloseAsync())
          } ]

/// Every type a public or protected member of the C# assembly mentions (API.md: no F# types).
let private surfaceTypes () : (string * Type) list =
    let asm = typeof<SlateClient>.Assembly

    let flags =
        Reflection.BindingFlags.Public
        ||| Reflection.BindingFlags.Instance
        ||| Reflection.BindingFlags.Static
        ||| Reflection.BindingFlags.DeclaredOnly

    let rec expand (t: Type) : Type list =
        if t.HasElementType then
            expand (t.GetElementType())
        elif t.IsGenericType then
            t.GetGenericTypeDefinition()
            :: (t.GetGenericArguments() |> Seq.collect expand |> List.ofSeq)
        else
            [ t ]

    [ for t in asm.GetExportedTypes() do
          let visible (m: Reflection.MethodBase) =
              not (isNull m) && (m.IsPublic || m.IsFamily)

          for m in t.GetMethods flags do
              if visible m then
                  for p in m.GetParameters() do
                      for x in expand p.ParameterType -> sprintf "%s.%s(%s)" t.Name m.Name p.Name, x

                  for x in expand m.ReturnType -> sprintf "%s.%s returns" t.Name m.Name, x

          for c in t.GetConstructors flags do
              if visible c then
                  for p in c.GetParameters() do
                      for x in expand p.ParameterType -> sprintf "%s ctor(%s)" t.Name p.Name, x

          for p in t.GetProperties flags do
              if visible p.GetMethod || visible p.SetMethod then
                  for x in expand p.PropertyType -> sprintf "%s.%s" t.Name p.Name, x

          if not (isNull t.BaseType) then
              for x in expand t.BaseType -> sprintf "%s base" t.Name, x ]

let private surfaceTests =
    testList
        "public surface"
        [ test "no FSharp.Core type, tuple or engine type appears in the C# assembly's public surface" {
              let fsharpCore = typeof<list<int>>.Assembly
              let engine = typeof<Slate.Engine.Db>.Assembly

              let leaks =
                  surfaceTypes ()
                  |> List.filter (fun (where, t) ->
                      t.Assembly = fsharpCore
                      // engine types outside namespace Slate (SlateException & co. live there) would
                      // drag F# options and lists in; the one bridge is ObjectStore.FromEngine
                      || (t.Assembly = engine
                          && t.Namespace <> "Slate"
                          && not (where.StartsWith "ObjectStore.FromEngine"))
                      || (t.IsGenericType
                          && t.FullName <> null
                          && (t.FullName.StartsWith "System.Tuple"
                              || t.FullName.StartsWith "System.ValueTuple")))
                  |> List.map (fun (where, t) -> sprintf "%s: %s" where t.FullName)
                  |> List.distinct

              Expect.isEmpty leaks "F# types in the C# surface"
              Expect.isGreaterThan (surfaceTypes ()).Length 200 "the scan sees the surface"
          } ]

let allTests =
    testList "Facade" [ storeTests; validationTests; readTests; lifecycleTests; surfaceTests ]
