/// Runs `operation` with `labels` added to the labels in force (Go's `pprof.Do`): inside it,
/// `ProfileLabels.current` is the outer labels merged with `labels` (`labels` wins on equal keys),
/// and CPU samples taken in it carry those labels. Afterwards the outer labels are in force again,
/// also when `operation` throws.
///
/// Tasks started inside (`async let`, task groups, `Task {}`) inherit the labels; `Task.detached`
/// does not (it inherits no task-locals).
@inlinable @discardableResult
public func withProfileLabels<Success, Failure: Error>(
    _ labels: ProfileLabels,
    operation: () throws(Failure) -> Success
) throws(Failure) -> Success {
    // Inlinable so that callers get a specialized copy: a generic call costs more than the scope.
    guard LabelRuntime.bind(adding: labels) else { return try operation() }
    defer { LabelRuntime.unbind() }
    return try operation()
}

/// Runs `operation` with `labels` added to the labels in force (Go's `pprof.Do`): inside it,
/// `ProfileLabels.current` is the outer labels merged with `labels` (`labels` wins on equal keys),
/// and CPU samples taken in it carry those labels, on whichever thread the task resumes after each
/// `await`. Afterwards the outer labels are in force again, also when `operation` throws.
///
/// Child tasks started inside (`async let`, task groups, `Task {}`) inherit the labels;
/// `Task.detached` does not (it inherits no task-locals): capture `ProfileLabels.current` and wrap
/// the detached task's body in `withProfileLabels` to carry them over.
@inlinable @discardableResult
public func withProfileLabels<Success, Failure: Error>(
    _ labels: ProfileLabels,
    isolation: isolated (any Actor)? = #isolation,
    operation: () async throws(Failure) -> Success
) async throws(Failure) -> Success {
    guard LabelRuntime.bind(adding: labels) else { return try await operation() }
    defer { LabelRuntime.unbind() }
    return try await operation()
}
