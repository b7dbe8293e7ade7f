"""Solution to exercise teacher_swap (tutorial 01b, section 3): Algorithm 1's teacher update after a stage."""


def teacher_swap(teacher_score, score):
    if teacher_score is None:                  # the first stage scores the offline policy, already the teacher
        return score, False
    if score > teacher_score:                  # strictly better: the exploitation policy becomes the teacher
        return score, True
    return teacher_score, False                # a tie or a drop keeps the teacher and its score
