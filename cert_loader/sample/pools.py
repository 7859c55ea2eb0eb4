"""Value pools with the awkward text real districts send (accents, CJK, emoji, quotes, backslashes, tabs, newlines)."""

from __future__ import annotations

FIRST_NAMES = (
    "Ava", "Liam", "Noah", "Emma", "Olivia", "Mateo", "Sofía", "José", "Zoë", "Jürgen", "Chloé", "Björn",
    "Nguyễn Anh", "伟", "美玲", "Aarav", "Fatima", "Łukasz", "Siobhán", "D'Andre", "Mary-Kate", "Renée",
    "Ömer", "Ana María", "Kai", "Amara", "Søren", "Élodie", "Grace", "Mohammed",
)

LAST_NAMES = (
    "Smith", "Johnson", "García", "Müller", "O'Brien", "D'Angelo", "Nguyễn", "李", "王", "Ødegaard",
    "van der Berg", "Brown", "Martínez", "Kowalski", "Schröder", "Dubois", "Okafor", "Patel", "Novák",
    "Jones", "Williams", "Hernández", "Łęcki", "MacDonald", "St. John", "Ó Súilleabháin", "Davis",
)

NICKNAMES = ('"Doc" Smith', "Coach K", "Mx. O'Hara", "Señora G", "Back\\slash Bob", "🎸 Rocky", "Miss \"J\"")

STREETS = (
    "Main St", "Oak Avenue", "Rue de l'Église", "Königstraße", "北京路", "Calle Mayor", "Elm St. (rear)",
    "Maple Dr", "Avenida São João", "O'Connell Street",
)

SCHOOL_STEMS = (
    "Lincoln", "Jefferson", "École Saint-Exupéry", "Jürgen Habermas", "北京 International", "O'Keefe",
    "Martin Luther King Jr.", "Riverside", "Sacagawea", "César Chávez", "Hillcrest", "Washington",
)
SCHOOL_TYPES = ("Elementary", "Middle", "High")

# Free text: tabs, newlines, a backslash, quotes, emoji and non-Latin scripts, to stress COPY escaping.
NOTES = (
    "Great progress this term 🎉",
    "Parent said: \"call after 5pm\"",
    "Needs follow-up\twith counselor",
    "Line one of the note\nLine two of the note",
    "Path on the old share: C:\\records\\2024\\",
    "Prefers to be called O'Malley",
    "Allergic to peanuts; carries EpiPen",
    "家长希望用中文沟通",
    "Élève très motivée, übt täglich",
    "Quote 'single', \"double\", and a tab\there",
    "Moved from out of state — records pending",
    "Comma, separated, text; semicolons; too",
)

STAFF_TITLES = ("Teacher", "Teacher", "Teacher", "Counselor", "Librarian", "Teacher Aide")

COURSES = (
    ("MATH", "Mathematics", "Algebra"), ("MATH", "Mathematics", "Geometry"), ("ELA", "English", "English Language Arts"),
    ("SCI", "Science", "Biology"), ("SCI", "Science", "Chemistry"), ("SS", "Social Studies", "World History"),
    ("WL", "World Languages", "Français avancé"), ("WL", "World Languages", "Deutsch für Anfänger"),
    ("WL", "World Languages", "中文"), ("ART", "Fine Arts", "Art & Design"), ("MUS", "Fine Arts", "Music \"Band\""),
    ("PE", "Physical Education", "Physical Education"), ("CS", "Computer Science", "Intro to Programming"),
)

TERMS = ("2024-FALL", "2025-SPRING", "2024-25")
ATTENDANCE_TYPES = ("Absent", "Tardy", "Excused Absence", "Early Departure", "Tardy")

LANGUAGES = ("English", "English", "English", "Español", "Deutsch", "普通话", "Tiếng Việt", "العربية", "Français")

ALLERGIES_JSON = (
    "{}",
    '{"food": ["peanut"], "severity": "high", "epipen": true}',
    '{"food": ["milk", "egg"], "severity": "mild", "epipen": false}',
    '{"environmental": ["pollen"], "notes": "Saisonnier — printemps"}',
    '{"medication": ["penicillin"], "severity": "moderate", "reaction": "rash \\"hives\\""}',
)

OPEN_HOURS_JSON = (
    '{"mon": "08:00-15:00", "tue": "08:00-15:00", "fri": "08:00-12:00"}',
    '{"mon-fri": "07:30-16:00", "nurse": "Mme Lefèvre"}',
)

VISIT_REASONS = ("Headache", "Stomach ache", "Injury — playground", "Medication", "Fever", "Asthma check", "Other")
VACCINES = ("MMR", "DTaP", "HepB", "VAR", "IPV", "Tdap")
SCREENING_TYPES = ("Vision", "Hearing", "BMI", "Dental", "Scoliosis")
SCREENING_RESULTS = ("Normal", "Refer", "Recheck in 6 months", "Pass", "Fail — referred to specialist")

SPECIALTIES = ("School Psychology", "Speech-Language", "Counseling", "Social Work", "Occupational Therapy")
CREDENTIALS = ("LPC", "LCSW", "NCSP", "BCBA", "SLP-CCC", "PSY")
PLAN_TYPES = ("IEP", "504", "Counseling", "Speech")
GOALS_JSON = (
    '{"goals": ["Improve reading fluency", "Self-advocacy"], "minutes_per_week": 60}',
    '{"goals": ["Articulation of /r/ sound"], "minutes_per_week": 30, "language": "Español"}',
    '{"goals": ["Coping strategies 😌", "Peer relationships"], "minutes_per_week": 45, "review": "quarterly"}',
)
REFERRAL_REASONS = ("Academic concern", "Behavior", "Attendance", "Family request", "Teacher referral: \"withdrawn\"")

ASSESSMENTS = (
    ("Reading Fluency", "ELA"), ("Math Benchmark", "Mathematics"), ("Science Inquiry", "Science"),
    ("Écriture et rédaction", "ELA"), ("Lesen und Schreiben", "World Languages"), ("Algebra Readiness", "Mathematics"),
)
ITEM_TYPES = ("multiple_choice", "constructed_response", "true_false", "essay")
LEVELS = (("L1", "Below Basic"), ("L2", "Basic"), ("L3", "Proficient"), ("L4", "Avancé ★"))
ACCOMMODATIONS_JSON = (
    '{"extended_time": true, "multiplier": 1.5}',
    '{"read_aloud": true, "language": "Español"}',
    '{"large_print": true, "breaks": ["every 30 minutes"]}',
)
OBJECTIVES = ("OBJ-1", "OBJ-2", "OBJ-3", "OBJ-4", "OBJ-5")
