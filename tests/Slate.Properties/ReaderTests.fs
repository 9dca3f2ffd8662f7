module Slate.Properties.ReaderTests

open Expecto

let allTests = testList "Reader" []
