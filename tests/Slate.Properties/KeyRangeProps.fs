module Slate.Properties.KeyRangeProps

open Expecto
open FsCheck
open FsCheck.FSharp
open Slate.Model
open Slate.Properties.TestUtil

// ---- Reference definitions (independent of Bytes.compare / SequenceCompareTo) ----

/// Lexicographic unsigned order, a proper prefix first (F# structural list order).
let refCompare (a: byte[]) (b: byte[]) : int =
    compare (List.ofArray a) (List.ofArray b)

let refStartOk (b: KeyBound) (k: byte[]) : bool =
    match b with
    | KeyBound.Unbounded -> true
    | KeyBound.Included s -> refCompare s k <= 0
    | KeyBound.Excluded s -> refCompare s k < 0

let refEndOk (b: KeyBound) (k: byte[]) : bool =
    match b with
    | KeyBound.Unbounded -> true
    | KeyBound.Included e -> refCompare k e <= 0
    | KeyBound.Excluded e -> refCompare k e < 0

let refContains (r: KeyRange) (k: byte[]) : bool =
    refStartOk r.Start k && refEndOk r.End k

let startsWith (p: byte[]) (k: byte[]) : bool =
    k.Length >= p.Length && Array.sub k 0 p.Length = p

/// Every byte string over `alphabet` of length 0 .. `maxLen`.
let universeOf (alphabet: byte list) (maxLen: int) : byte[] list =
    let rec go n =
        if n = 0 then
            [ [] ]
        else
            let shorter = go (n - 1)

            [ [] ]
            @ [ for b in alphabet do
                    for s in shorter -> b :: s ]
            |> List.distinct

    go maxLen |> List.map Array.ofList |> List.sortWith refCompare

let alphabet = [ 0x00uy; 0x01uy; 0xFFuy ]

/// Bound keys: length ≤ 2 (13 strings).
let boundKeys: byte[] list = universeOf alphabet 2

/// Witness universe: length ≤ 3 (40 strings). A non-empty range whose bound keys have length ≤ 2
/// contains one of ε, s or s ‖ 0x00, all in here, so "exists u in universe" decides non-emptiness.
let universe: byte[] list = universeOf alphabet 3

let allBounds: KeyBound list =
    KeyBound.Unbounded
    :: [ for k in boundKeys do
             yield KeyBound.Included k
             yield KeyBound.Excluded k ]

let allRanges: KeyRange list =
    [ for s in allBounds do
          for e in allBounds -> { Start = s; End = e } ]

let refNonEmpty (r: KeyRange) : bool = universe |> List.exists (refContains r)

let boundGen: Gen<KeyBound> = Gen.elements allBounds
let smallRangeGen: Gen<KeyRange> = Gen.elements allRanges

/// Bounds over the shared key generator (long keys, shared prefixes, 0x00/0xFF).
let bigBoundGen: Gen<KeyBound> =
    Gen.frequency
        [ 1, Gen.constant KeyBound.Unbounded
          3, Generators.keyGen |> Gen.map KeyBound.Included
          3, Generators.keyGen |> Gen.map KeyBound.Excluded ]

let bigRangeGen: Gen<KeyRange> =
    Gen.map2 (fun s e -> { Start = s; End = e }) bigBoundGen bigBoundGen

let keyOrEmptyGen: Gen<byte[]> =
    Gen.frequency [ 1, Gen.constant [||]; 8, Generators.keyGen ]

/// Prefixes biased to trailing 0xFF runs.
let prefixGen: Gen<byte[]> =
    Gen.frequency
        [ 1, Gen.constant [||]
          4, Generators.keyGen
          2, Gen.map2 (fun (k: byte[]) n -> Array.append k (Array.create n 0xFFuy)) keyOrEmptyGen (Gen.choose (1, 3)) ]

/// Keys related to a prefix: extensions, truncations, neighbours and the prefix successor.
let relatedKeyGen (p: byte[]) : Gen<byte[]> =
    Gen.frequency
        [ 3, Generators.keyGen |> Gen.map (Array.append p)
          1, Gen.constant p
          1, Gen.choose (0, p.Length) |> Gen.map (fun n -> Array.sub p 0 n)
          1,
          Gen.constant (
              match KeyRange.prefixSuccessor p with
              | Some s -> s
              | None -> Array.append p [| 0uy |]
          )
          1,
          (if p.Length = 0 then
               Generators.keyGen
           else
               Gen.map2
                   (fun i (b: byte) ->
                       let c = Array.copy p
                       c[i % p.Length] <- b
                       c)
                   (Gen.choose (0, 1000))
                   Generators.byteGen)
          1, Generators.keyGen ]

let b (s: string) : byte[] = System.Text.Encoding.ASCII.GetBytes s

let expectError (msg: string) (r: Result<KeyRange, string>) =
    match r with
    | Error e -> Expect.equal e msg "error message"
    | Ok r -> failtestf "expected %s, got %s" msg (KeyRange.describe r)

let expectOk (r: Result<KeyRange, string>) : KeyRange =
    match r with
    | Ok r -> r
    | Error e -> failtestf "unexpected error: %s" e

let examples =
    testList
        "examples"
        [ test "create: SPEC §8 error cases" {
              let a = Some(b "a")
              expectError KeyRange.MustBeNonEmpty (KeyRange.create a true a false)
              expectError KeyRange.MustBeNonEmpty (KeyRange.create a false a true)
              expectError KeyRange.MustBeNonEmpty (KeyRange.create a false a false)
              expectError KeyRange.MustBeNonEmpty (KeyRange.create a false (Some(b "a\000")) false)
              expectError KeyRange.StartGreaterThanEnd (KeyRange.create (Some(b "b")) true a true)
              expectError KeyRange.StartGreaterThanEnd (KeyRange.create (Some(b "b")) false a false)
              expectError KeyRange.StartGreaterThanEnd (KeyRange.create (Some(b "ab")) true a true)
              expectError KeyRange.MustBeNonEmpty (KeyRange.create None true (Some [||]) false)
          }
          test "create: accepted ranges" {
              let a = Some(b "a")
              let r = expectOk (KeyRange.create a true a true)
              Expect.isTrue (KeyRange.contains r (b "a")) "[a,a] holds a"
              Expect.isFalse (KeyRange.contains r (b "a\000")) "[a,a] is only a"
              let r = expectOk (KeyRange.create a false (Some(b "a\000")) true)
              Expect.isTrue (KeyRange.contains r (b "a\000")) "(a, a0] holds a0"
              let r = expectOk (KeyRange.create a true (Some(b "a\000")) false)
              Expect.isTrue (KeyRange.contains r (b "a")) "[a, a0) holds a"
              let r = expectOk (KeyRange.create a false (Some(b "a\000\000")) false)
              Expect.isTrue (KeyRange.contains r (b "a\000")) "(a, a00) holds a0"
              Expect.equal (expectOk (KeyRange.create None true None false)) KeyRange.all "all"
          }
          test "create: an empty inclusive start is unbounded; an empty exclusive start is kept" {
              let r = expectOk (KeyRange.create (Some [||]) true (Some(b "b")) false)
              Expect.equal r.Start KeyBound.Unbounded "normalised"
              let r = expectOk (KeyRange.create (Some [||]) false (Some(b "b")) false)
              Expect.equal r.Start (KeyBound.Excluded [||]) "kept"
              Expect.isFalse (KeyRange.contains r [||]) "excludes the empty string"
              Expect.isTrue (KeyRange.contains r [| 0uy |]) "holds 00"
          }
          test "create copies its inputs" {
              let s = b "a"
              let r = expectOk (KeyRange.create (Some s) true None false)
              s[0] <- 0x7Auy
              Expect.isTrue (KeyRange.contains r (b "b")) "unaffected by caller mutation"
          }
          test "prefix: SPEC §8 examples" {
              Expect.equal
                  (KeyRange.prefix (b "ab"))
                  { Start = KeyBound.Included(b "ab")
                    End = KeyBound.Excluded(b "ac") }
                  "ab"

              Expect.equal
                  (KeyRange.prefix [| 0x61uy; 0xFFuy; 0xFFuy |])
                  { Start = KeyBound.Included [| 0x61uy; 0xFFuy; 0xFFuy |]
                    End = KeyBound.Excluded [| 0x62uy |] }
                  "trailing FF dropped"

              Expect.equal
                  (KeyRange.prefix [| 0xFFuy; 0xFFuy |])
                  { Start = KeyBound.Included [| 0xFFuy; 0xFFuy |]
                    End = KeyBound.Unbounded }
                  "all FF"

              Expect.equal (KeyRange.prefix [||]) KeyRange.all "empty"
              Expect.equal (KeyRange.prefixSuccessor [| 0x01uy; 0xFEuy |]) (Some [| 0x01uy; 0xFFuy |]) "FE -> FF"
          }
          test "overlapsKeys examples" {
              let r = expectOk (KeyRange.create (Some(b "c")) true (Some(b "f")) false)
              Expect.isTrue (KeyRange.overlapsKeys (b "a") (b "c") r) "touches start"
              Expect.isFalse (KeyRange.overlapsKeys (b "f") (b "z") r) "end excluded"
              Expect.isTrue (KeyRange.overlapsKeys (b "a") (b "z") r) "covers"
              Expect.isTrue (KeyRange.overlapsKeys (b "d") (b "d") r) "single key"
              Expect.isFalse (KeyRange.overlapsKeys (b "a") (b "b") r) "before"
              Expect.isFalse (KeyRange.overlapsKeys (b "e") (b "d") r) "first > last"
          }
          test "describe" {
              let r = expectOk (KeyRange.create (Some(b "ab")) true (Some(b "ac")) false)
              Expect.equal (KeyRange.describe r) "[6162, 6163)" "half-open"
              Expect.equal (KeyRange.describe KeyRange.all) "(-inf, +inf)" "all"
          } ]

let exhaustive =
    testList
        "exhaustive over a small alphabet"
        [ test "isEmpty equals brute force for every pair of bounds" {
              for r in allRanges do
                  if KeyRange.isEmpty r <> not (refNonEmpty r) then
                      failtestf "isEmpty wrong for %s" (KeyRange.describe r)
          }
          test "create errors exactly as specified and keeps the key set" {
              let opts = None :: (boundKeys |> List.map Some)

              for s in opts do
                  for si in [ true; false ] do
                      for e in opts do
                          for ei in [ true; false ] do
                              let bound k inc =
                                  match k with
                                  | None -> KeyBound.Unbounded
                                  | Some k -> if inc then KeyBound.Included k else KeyBound.Excluded k

                              let reference = { Start = bound s si; End = bound e ei }

                              let expected =
                                  match s, e with
                                  | Some s, Some e when refCompare s e > 0 -> Error KeyRange.StartGreaterThanEnd
                                  | _ when not (refNonEmpty reference) -> Error KeyRange.MustBeNonEmpty
                                  | _ -> Ok()

                              match KeyRange.create s si e ei, expected with
                              | Error m, Error x -> Expect.equal m x (KeyRange.describe reference)
                              | Ok r, Ok() ->
                                  Expect.notEqual r.Start (KeyBound.Included [||]) "normalised start"

                                  for u in universe do
                                      if KeyRange.contains r u <> refContains reference u then
                                          failtestf "contains differs for %s" (KeyRange.describe reference)
                              | got, exp -> failtestf "%A: got %A, expected %A" reference got exp
          }
          test "prefix p contains exactly the keys starting with p" {
              let keys = universeOf alphabet 4

              for p in universe do
                  let r = KeyRange.prefix p

                  for k in keys do
                      if KeyRange.contains r k <> startsWith p k then
                          failtestf "prefix %s key %s" (Bytes.toHex p) (Bytes.toHex k)
          } ]

let properties =
    testList
        "properties"
        [ testPropN 500 "contains, isBelowStart, isAboveEnd agree with the reference"
          <| Prop.forAll (Arb.fromGen (Gen.zip bigRangeGen keyOrEmptyGen)) (fun (r, k) ->
              KeyRange.contains r k = refContains r k
              && KeyRange.isBelowStart r k = not (refStartOk r.Start k)
              && KeyRange.isAboveEnd r k = not (refEndOk r.End k)
              && KeyRange.containsSpan r (System.ReadOnlySpan k) = refContains r k)

          testPropN 500 "contains agrees with the reference on bound keys and their neighbours"
          <| Prop.forAll (Arb.fromGen bigRangeGen) (fun r ->
              let keysOf bnd =
                  match bnd with
                  | KeyBound.Unbounded -> []
                  | KeyBound.Included k
                  | KeyBound.Excluded k ->
                      [ k
                        Array.append k [| 0uy |]
                        Array.sub k 0 (k.Length - 1)
                        match KeyRange.prefixSuccessor k with
                        | Some s -> s
                        | None -> k ]

              keysOf r.Start @ keysOf r.End
              |> List.forall (fun k -> KeyRange.contains r k = refContains r k))

          testPropN 1000 "prefix range contains exactly the keys starting with p"
          <| Prop.forAll
              (Arb.fromGen (
                  gen {
                      let! p = prefixGen
                      let! ks = Gen.listOfLength 10 (relatedKeyGen p)
                      return p, ks
                  }
              ))
              (fun (p, ks) ->
                  let r = KeyRange.prefix p

                  not (KeyRange.isEmpty r)
                  && ks |> List.forall (fun k -> KeyRange.contains r k = startsWith p k))

          testPropN 1000 "intersect: contains both, None iff nothing shared"
          <| Prop.forAll (Arb.fromGen (Gen.zip smallRangeGen smallRangeGen)) (fun (a, c) ->
              let both u = refContains a u && refContains c u

              match KeyRange.intersect a c with
              | None -> not (universe |> List.exists both) && not (KeyRange.overlaps a c)
              | Some r ->
                  KeyRange.overlaps a c
                  && not (KeyRange.isEmpty r)
                  && universe |> List.forall (fun u -> KeyRange.contains r u = both u))

          testPropN 500 "intersect on large keys keeps exactly the common keys"
          <| Prop.forAll
              (Arb.fromGen (Gen.zip3 bigRangeGen bigRangeGen (Gen.listOfLength 20 keyOrEmptyGen)))
              (fun (a, c, ks) ->
                  match KeyRange.intersect a c with
                  | None -> ks |> List.forall (fun k -> not (refContains a k && refContains c k))
                  | Some r ->
                      ks
                      |> List.forall (fun k -> KeyRange.contains r k = (refContains a k && refContains c k)))

          testPropN 1000 "overlapsKeys equals brute force"
          <| Prop.forAll
              (Arb.fromGen (Gen.zip3 smallRangeGen (Gen.elements boundKeys) (Gen.elements boundKeys)))
              (fun (r, first, last) ->
                  let expected =
                      universe
                      |> List.exists (fun u -> refCompare first u <= 0 && refCompare u last <= 0 && refContains r u)

                  KeyRange.overlapsKeys first last r = expected)

          testPropN 1000 "withinPrefix holds exactly p ‖ s for s in the subrange"
          <| Prop.forAll (Arb.fromGen (Gen.zip (Gen.elements universe) smallRangeGen)) (fun (p, sub) ->
              let r = KeyRange.withinPrefix p sub
              let keys = universe @ (universe |> List.map (Array.append p))

              let ok =
                  keys
                  |> List.forall (fun k ->
                      let expected =
                          startsWith p k && refContains sub (Array.sub k p.Length (k.Length - p.Length))

                      KeyRange.contains r k = expected)

              ok && (KeyRange.isEmpty sub || not (KeyRange.isEmpty r))) ]

let allTests = testList "KeyRange" [ examples; exhaustive; properties ]
