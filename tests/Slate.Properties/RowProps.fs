module Slate.Properties.RowProps

open Expecto

let allTests = testList "Row" []
