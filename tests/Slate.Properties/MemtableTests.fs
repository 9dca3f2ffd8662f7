module Slate.Properties.MemtableTests

open Expecto

let allTests = testList "Memtable" []
